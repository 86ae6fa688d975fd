// giflib (Debian: libgif-dev), for animated GIFs. Only ACAIImaging imports it.
#include <gif_lib.h>
