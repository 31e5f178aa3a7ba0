/* conv.c: placeholder until its module lands. */
