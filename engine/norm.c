/* norm.c: placeholder until its module lands. */
