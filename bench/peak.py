"""Run a command and report the peak RSS of its process tree (largest process) on stderr.

A fresh parent per measured command, so RUSAGE_CHILDREN holds only that command."""

import resource
import subprocess
import sys

code = subprocess.run(sys.argv[1:]).returncode
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"\nPEAK_RSS_KB={peak_kb}", file=sys.stderr)
sys.exit(code)
