/* swin.c: placeholder until its module lands. */
