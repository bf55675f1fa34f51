# Shared by tools/metacheck and tools/pkgtest: their checks, counted and
# printed as "ok N - ..." / "not ok N - ...", and the version being built.

n=0
failed=0

# check DESCRIPTION COMMAND...: one test; returns COMMAND's status
check() {
	n=$((n + 1))
	if "${@:2}"; then
		echo "ok $n - $1"
	else
		echo "not ok $n - $1"
		failed=$((failed + 1))
		return 1
	fi
}

# tally_line LABEL: the closing line tools/matrix counts; returns 0 when
# nothing failed
tally_line() {
	echo "$1: $((n - failed)) passed, $failed failed"
	[ "$failed" = 0 ]
}

# ext_version: dbops.control's default_version (the Makefile reads it too)
ext_version() {
	sed -nE "s/^default_version = '([^']+)'.*/\1/p" "$(dirname "${BASH_SOURCE[0]}")/../dbops.control"
}
