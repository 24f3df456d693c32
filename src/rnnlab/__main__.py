import sys

try:  # Ctrl-C while the modules load ends like Ctrl-C anywhere else: exit 130, one line, no traceback
    from .cli import main
except KeyboardInterrupt:
    command = next((a for a in sys.argv[1:2] if not a.startswith("-")), "")
    print(f"\nrnnlab{' ' + command if command else ''}: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
