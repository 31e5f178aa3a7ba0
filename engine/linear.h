/* linear.h: placeholder */
