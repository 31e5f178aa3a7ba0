/* tfjs.c: placeholder until its module lands. */
