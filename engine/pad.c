/* pad.c: placeholder until its module lands. */
