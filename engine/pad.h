/* pad.h: placeholder */
