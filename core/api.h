/*
 * api.h - what libsgdsa_core exports. The library is compiled with hidden
 * visibility; the public core headers (core/sgdsa_core.h lists them) wrap
 * their declarations in SG_API_BEGIN / SG_API_END, and only those names are
 * exported. The kernel headers (kernels/) are not among them: the core
 * reaches the kernels through the backend tables alone.
 */
#ifndef SG_API_H
#define SG_API_H

#if defined(__GNUC__)
#define SG_API_BEGIN _Pragma("GCC visibility push(default)")
#define SG_API_END _Pragma("GCC visibility pop")
#else
#define SG_API_BEGIN
#define SG_API_END
#endif

#endif
