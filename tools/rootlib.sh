# Shared by tools/roots and tools/pkgtest: Debian root file systems built
# with debootstrap from the mirror the host's own apt sources name, and
# commands run inside them.  Needs root.

cache=/var/cache/dbops/roots

# suite_of VERSION: the Debian release whose PostgreSQL is VERSION, and the
# debootstrap script that builds it (bookworm's debootstrap has no forky
# script; sid's builds it)
suite_of() {
	case $1 in
	15) echo "bookworm bookworm" ;;
	17) echo "trixie trixie" ;;
	18) echo "forky sid" ;;
	*) return 1 ;;
	esac
}

# The host's Debian mirror, from its apt sources (deb822 or one-line form).
mirror() {
	local m
	m=$(awk '$1 == "URIs:" && $2 !~ /security/ { print $2; exit }' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$m" ] || m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
	[ -n "$m" ] || { echo "dbops: no Debian mirror in the host's apt sources" >&2; return 1; }
	echo "$m"
}

# run_in DIR COMMAND...: COMMAND inside DIR as its root file system, as root,
# in /.  Entered with unshare --mount: only a fresh proc and a tmpfs on
# /dev/shm are mounted in it, inside a mount namespace of its own, so nothing
# stays mounted afterwards and no host directory is ever visible in the root
# (files are copied in instead).
run_in() {
	local dir=$1
	shift
	unshare --mount --fork -- /bin/sh -c '
		dir=$1; shift
		mount -t proc proc "$dir/proc" &&
		mount -t tmpfs tmpfs "$dir/dev/shm" &&
		exec chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"' sh "$dir" "$@"
}

# base_root VERSION: prints the folder of a bare root of VERSION's release
# (debootstrap's minbase with its package lists fetched, and PostgreSQL
# VERSION and its pg_cron downloaded into apt's cache but not installed:
# nothing of dbops has ever been in it).  Cached as $cache/base-SUITE; copy
# it before changing anything in it.  Progress goes to $cache/base-SUITE.log.
base_root() {
	local version=$1 suite script dir tmp m log
	read -r suite script <<<"$(suite_of "$version")" || {
		echo "dbops: no Debian release with PostgreSQL $version (15, 17 or 18)" >&2
		return 2
	}
	dir=$cache/base-$suite
	log=$dir.log
	if [ ! -e "$dir/.complete" ]; then
		command -v debootstrap >/dev/null || {
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
		} >&2
		m=$(mirror) || return 1
		tmp=$dir.new
		rm -rf "$tmp"
		mkdir -p "$cache"
		echo "dbops: building a $suite root (PostgreSQL $version) from $m" >&2
		debootstrap --variant=minbase "$suite" "$tmp" "$m" "/usr/share/debootstrap/scripts/$script" >"$log" 2>&1 || {
			tail -20 "$log" >&2
			return 1
		}
		# the host's own release reads the host's apt sources (with its
		# updates and security suites), so that a package built on the host
		# against the host's server headers installs in the root
		if [ "$suite" = "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" ]; then
			rm -f "$tmp/etc/apt/sources.list"
			cp /etc/apt/sources.list "$tmp/etc/apt/" 2>/dev/null || true
			cp /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list "$tmp/etc/apt/sources.list.d/" 2>/dev/null || true
		fi
		# a suite's Release file may be past its Valid-Until (forky's is)
		echo 'Acquire::Check-Valid-Until "false";' >"$tmp/etc/apt/apt.conf.d/99no-check-valid-until"
		# no service starts inside the root (the standard policy-rc.d answer
		# "forbidden"): a package's postinst leaves its server stopped
		printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
		chmod 755 "$tmp/usr/sbin/policy-rc.d"
		run_in "$tmp" /bin/sh -c "apt-get update -q && apt-get install -y -q --download-only \
			postgresql-$version postgresql-$version-cron" >>"$log" 2>&1 || {
			tail -20 "$log" >&2
			return 1
		}
		touch "$tmp/.complete"
		rm -rf "$dir"
		mv "$tmp" "$dir"
	fi
	echo "$dir"
}

# copy_tree DEST: this checkout, without its build products, into DEST
# (emptied first)
copy_tree() {
	rm -rf "$1"
	mkdir -p "$1"
	(cd "$(dirname "${BASH_SOURCE[0]}")/.." &&
		tar -c --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
			--exclude=./results --exclude=./output_iso --exclude=./bench/out \
			--exclude=./tmp_check --exclude='./debian/postgresql-*-dbops' \
			--exclude=./debian/.debhelper .) |
		tar -x -C "$1"
}
