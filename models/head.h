/* head.h: placeholder */
