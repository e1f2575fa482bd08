#!/usr/bin/env bash
# Checks the docs: README.md stays short (at most 260 lines), every relative
# link in README.md, CHANGELOG.md and docs/*.md leads to a file that exists
# (and a `#anchor` into a markdown file to one of its headings), and every
# test the failure model cites exists. Prints each problem; exits 1 if any.
#   usage: scripts/check-docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."

max_readme_lines=260
problems=0
problem() {
  echo "check-docs: $*" >&2
  problems=$((problems + 1))
}

# The lines of a markdown file outside its fenced code blocks.
prose() {
  awk '/^[ \t]*```/ { fenced = !fenced; next } !fenced { print }' "$1"
}

# The anchors of a markdown file's headings, as GitHub makes them: the text
# lower-cased, markup and punctuation dropped, spaces turned into hyphens; a
# repeated heading gets -1, -2, ...
anchors() {
  prose "$1" | awk '
    /^#+[ \t]/ {
      t = $0
      sub(/^#+[ \t]+/, "", t); sub(/[ \t]+#+[ \t]*$/, "", t)
      while (match(t, /\[[^]]*\]\([^)]*\)/)) {          # [text](url) -> text
        link = substr(t, RSTART, RLENGTH)
        sub(/\]\(.*$/, "", link); sub(/^\[/, "", link)
        t = substr(t, 1, RSTART - 1) link substr(t, RSTART + RLENGTH)
      }
      t = tolower(t)
      gsub(/[^a-z0-9 _-]/, "", t)
      gsub(/ /, "-", t)
      if (t in seen) { seen[t]++; print t "-" seen[t] } else { seen[t] = 0; print t }
    }'
}

lines=$(wc -l < README.md)
if [ "$lines" -gt "$max_readme_lines" ]; then
  problem "README.md has $lines lines, more than $max_readme_lines: move the detail to docs/"
fi

for file in README.md CHANGELOG.md docs/*.md; do
  [ -f "$file" ] || { problem "$file is missing"; continue; }
  dir=$(dirname "$file")
  # Each inline link's target: ](target) or ](target "title").
  while IFS= read -r target; do
    target=${target%% *}
    case $target in
      '' | http://* | https://* | mailto:*) continue ;;
    esac
    path=${target%%#*}
    anchor=""
    [[ $target == *#* ]] && anchor=${target#*#}
    if [ -z "$path" ]; then
      resolved=$file
    else
      resolved=$dir/$path
    fi
    if [ ! -e "$resolved" ]; then
      problem "$file: link to $target: no file $resolved"
      continue
    fi
    if [ -n "$anchor" ] && [[ $resolved == *.md ]]; then
      if ! anchors "$resolved" | grep -qxF -- "$anchor"; then
        problem "$file: link to $target: no heading with the anchor #$anchor in $resolved"
      fi
    fi
  done < <(prose "$file" | grep -o '\](<*[^)]*>*)' | sed -e 's/^\](<*//' -e 's/>*)$//')
done

# Each row of the failure model names the tests that show it: they must exist.
if [ -f docs/failure-model.md ]; then
  while IFS= read -r name; do
    if ! grep -rqE "fn ${name}\b" tests src; then
      problem "docs/failure-model.md cites the test $name, which is in no file of tests/ or src/"
    fi
  done < <(grep '^|' docs/failure-model.md | awk -F'|' '{ print $(NF - 1) }' \
             | grep -oE '`[a-z0-9]+(_[a-z0-9]+){3,}`' | tr -d '`' | sort -u)
fi

if [ "$problems" -gt 0 ]; then
  echo "check-docs: $problems problem(s)" >&2
  exit 1
fi
echo "check-docs: README.md has $lines lines; every local link and cited test resolves"
