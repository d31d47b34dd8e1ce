/* home.h - where warden's own files are (docs/install.md): the Lua modules, the
** dashboard, the example policies and the `warden init` templates. Found relative to the
** code that asks (the warden binary or core.so), never a path fixed at build time:
** WARDEN_HOME, else the first of these above the binary or library that holds the code:
**   PREFIX/share/warden   (installed: PREFIX/bin/warden, PREFIX/lib/warden/core.so)
**   the checkout          (build/warden, build/lua/warden/core.so) */
#ifndef WD_HOME_H
#define WD_HOME_H

#include <stddef.h>

/* the home directory, absolute, without a trailing slash; "." when nothing was found
** (then *found is 0). Computed once; borrowed, lives as long as the process. */
const char *wd_home_dir(int *found);
/* HOME/sub into out; out */
char *wd_home_path(const char *sub, char *out, size_t n);
/* the directory of the running program's code (the executable or core.so); borrowed */
const char *wd_home_code_dir(void);

#endif
