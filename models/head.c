/* head.c: placeholder until the shared classifier head lands. */
