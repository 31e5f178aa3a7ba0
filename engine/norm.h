/* norm.h: placeholder */
