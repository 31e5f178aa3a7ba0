/* eltwise.c: placeholder until its module lands. */
