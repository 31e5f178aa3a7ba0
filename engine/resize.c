/* resize.c: placeholder until its module lands. */
