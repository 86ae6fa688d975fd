// libpng's simplified API (png_image_*): it reports errors through return codes and png_image.message,
// never through longjmp, which Swift cannot unwind.
#include <png.h>
