/* pooling.h: placeholder */
