"""jemalloc for XLA:CPU: `python -m hgjax.main` and `hgjax.bench` re-execute themselves with it.

XLA:CPU allocates every large activation afresh on each op. With glibc malloc those buffers
come back from the OS as new pages each time (millions of page faults per run); jemalloc with
decay off keeps freed pages in its arenas and reuses them (measured: `docs/benchmarks.md`).
`scripts/install_jemalloc.sh` (run by `.ci/run` and the README set-up) installs it
(`libjemalloc2`); without it hgjax runs on the default allocator. `HGJAX_ALLOCATOR=default`
opts out.
"""

import ctypes.util
import os
import sys

JEMALLOC_PATHS = ('/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
                  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2', '/usr/lib64/libjemalloc.so.2',
                  '/usr/local/lib/libjemalloc.so.2')
# Decay off: freed pages stay in jemalloc's arenas instead of going back to the OS.
JEMALLOC_CONF = 'dirty_decay_ms:-1,muzzy_decay_ms:-1,background_thread:false'


def find_jemalloc() -> str | None:
  """Path of libjemalloc.so.2 (Debian/Ubuntu package libjemalloc2), or None."""
  for p in JEMALLOC_PATHS:
    if os.path.exists(p):
      return p
  name = ctypes.util.find_library('jemalloc')
  return name if name and os.path.isabs(name) else None


def name() -> str:
  """'jemalloc' when preloaded in this process, else 'default'."""
  return 'jemalloc' if 'jemalloc' in os.environ.get('LD_PRELOAD', '') else 'default'


def jemalloc_env(env: dict) -> dict | None:
  """A copy of `env` preloading jemalloc with decay off; None if missing or already there."""
  lib = find_jemalloc()
  if lib is None or 'jemalloc' in env.get('LD_PRELOAD', ''):
    return None
  new = dict(env)
  new['LD_PRELOAD'] = ':'.join(p for p in (lib, env.get('LD_PRELOAD', '')) if p)
  new.setdefault('MALLOC_CONF', JEMALLOC_CONF)
  return new


def default_env(env: dict) -> dict:
  """A copy of `env` without jemalloc preloaded."""
  new = dict(env)
  new['LD_PRELOAD'] = ':'.join(p for p in env.get('LD_PRELOAD', '').split(':')
                               if p and 'jemalloc' not in p)
  new.pop('MALLOC_CONF', None)
  return new


def reexec_with(wanted: str, module: str) -> None:
  """Re-executes `python -m module <same args>` with allocator `wanted` ('jemalloc',
  'default' or 'auto' = jemalloc if installed). No-op when the process already has it. The
  process id stays the same (exec), so signals and supervisors are unaffected."""
  if os.environ.get('HGJAX_ALLOCATOR') == 'default' and wanted == 'auto':
    return
  if wanted in ('auto', 'jemalloc'):
    if name() == 'jemalloc':
      return
    env = jemalloc_env(os.environ)
    if env is None:
      if wanted == 'jemalloc':
        raise SystemExit('jemalloc requested but libjemalloc.so.2 was not found '
                         '(apt-get install libjemalloc2)')
      return
  elif name() == 'default':
    return
  else:
    env = default_env(os.environ)
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, '-m', module, *sys.argv[1:]], env)


# jemalloc's MALLCTL_ARENAS_ALL: "arena.4096.purge" purges every arena.
_JEMALLOC_PURGE_ALL = b'arena.4096.purge'


def release_free_memory() -> bool:
  """Returns the heap's free pages to the OS; True if an allocator call was made.

  XLA's compiler frees gigabytes after compiling a large program (measured: 8-stack batch-8
  train step, 3.36 GiB resident after compilation, 1.53 GiB after this call), but neither
  allocator gives them back by itself: glibc keeps them in its heap (released here by
  `malloc_trim(0)`), jemalloc with decay off in its arenas (purged here through `mallctl`).
  Called once after the first (compiling) train step and after evaluations; each later step
  takes back only what it uses.
  """
  if name() == 'jemalloc':
    mallctl = getattr(ctypes.CDLL(None), 'mallctl', None)
    if mallctl is None:
      return False
    mallctl(_JEMALLOC_PURGE_ALL, None, None, None, ctypes.c_size_t(0))
    return True
  libc_name = ctypes.util.find_library('c')
  libc = ctypes.CDLL(libc_name) if libc_name else None
  trim = getattr(libc, 'malloc_trim', None)
  if trim is None:      # not glibc (e.g. musl): nothing to call
    return False
  trim(0)
  return True
