/* decode_image.c: placeholder */
