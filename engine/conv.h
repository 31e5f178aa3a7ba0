/* conv.h: placeholder */
