/* eltwise.h: placeholder */
