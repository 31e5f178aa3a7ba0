/* resize.h: placeholder */
