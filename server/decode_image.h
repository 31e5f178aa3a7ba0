/* decode_image.h: placeholder */
