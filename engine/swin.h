/* swin.h: placeholder */
