/* pooling.c: placeholder until its module lands. */
