/* salient_run.c: placeholder */
int main(void) { return 1; }
