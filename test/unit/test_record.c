#include "tap.h"
int main(void) { OK(1, "placeholder"); return tap_done(); }
