#!/usr/bin/env bash
# Checks the documentation against what it documents (issue 14), in seconds:
#
# 1. The man pages, built from packaging/man/*.md with go-md2man and
#    rendered with "man -P cat", show no stray markup: a word glued to the
#    next paragraph ("it.For", "creates:digits", what go-md2man makes of a
#    second paragraph in a definition), an underscore left from emphasis
#    ("_UNIXTIME"), Markdown that was not converted (**, `, "](", a leading
#    ":   "), or an unexpanded @PLACEHOLDER@.
# 2. Every README code block preceded by "<!-- packaging/examples/NAME -->"
#    is exactly the directive lines of that file (comments and blank lines
#    dropped), so that the README shows the files the tests log in through.
#    (The man pages include them with @EXAMPLE NAME@; see build-man.sh.)
#
# Usage: packaging/check-docs.sh        prints one line per problem; exit 1 if any
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 2

problems=0
problem() {
	echo "check-docs: $*"
	problems=$((problems + 1))
}

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
packaging/build-man.sh "$out" >/dev/null || { echo "check-docs: build-man.sh failed"; exit 1; }
for page in "$out"/*; do
	name=$(basename "$page")
	text=$(MANWIDTH=80 man -P cat -l "$page" 2>&1) || { problem "$name: man failed"; continue; }
	# groff's own complaints (a line starting with "." is a macro call).
	while IFS= read -r hit; do
		[ -n "$hit" ] && problem "$name: groff: $hit"
	done < <(MANWIDTH=80 man --warnings -P cat -l "$page" 2>&1 >/dev/null)
	while IFS= read -r hit; do
		[ -n "$hit" ] && problem "$name: stray markup: $hit"
	done < <(grep -n -E \
		-e '(^|[^[:alnum:]_])_[[:upper:]]' \
		-e '[[:lower:]]{2,}\.[[:upper:]][[:lower:]]' \
		-e '[[:lower:]]{3,}:[[:lower:]]{3,}([^[:alnum:])/]|$)' \
		-e '\*\*|`|\]\(|^ *:   |@[A-Z]+[ @]' <<<"$text")
done

# README blocks marked as example files.
awk '
	/^<!-- packaging\/examples\/[^ ]+ -->$/ { name = $2; sub("packaging/examples/", "", name); want = 1; next }
	want && /^```/ { inblock = 1; want = 0; file = name; print "@@ " file; next }
	inblock && /^```/ { inblock = 0; next }
	inblock { print }
	{ want = 0 }
' README.md >"$out/readme-blocks"
blocks=0
while IFS= read -r line; do
	case "$line" in
	"@@ "*)
		blocks=$((blocks + 1))
		name=${line#@@ }
		: >"$out/block.$blocks"
		echo "$name" >"$out/name.$blocks"
		;;
	*) printf '%s\n' "$line" >>"$out/block.$blocks" ;;
	esac
done <"$out/readme-blocks"
[ "$blocks" -gt 0 ] || problem "README.md marks no block as an example file"
for i in $(seq 1 "$blocks"); do
	name=$(cat "$out/name.$i")
	file=packaging/examples/$name
	[ -f "$file" ] || { problem "README.md names $file, which does not exist"; continue; }
	if ! diff <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$file") "$out/block.$i" >"$out/diff"; then
		problem "README.md's block for $file differs from the file:"
		sed 's/^/    /' "$out/diff"
	fi
done

if [ "$problems" -eq 0 ]; then
	echo "check-docs: man pages render without stray markup; $blocks README blocks equal their example files"
else
	exit 1
fi
