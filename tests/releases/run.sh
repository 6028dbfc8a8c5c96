#!/usr/bin/env bash
# Runs tests/releases/t/release.t on the real upstream Perl of Proxmox VE releases listed in
# tests/releases/RELEASES (scripts/gen-releases.pl), one row at a time, under perl -T.
#   tests/releases/run.sh [--sample]        the oldest and the newest release of each PVE major
#   tests/releases/run.sh --all [--record]  every release; --record writes the outcomes to
#                                           tests/releases/RESULTS and the table into README.md
#   tests/releases/run.sh RELEASE...        the releases named
# A release's outcome: pass, refused (its files lack an anchor and the integration was refused
# as a whole, verified by the test) or fail. Fails if an outcome differs from the one
# tests/releases/RESULTS records for that release (the last full run, committed), or if the
# README table is not the one made from that file. Logs, timings: build/releases/logs/.
# Environment: PVE_ENTRAID_PERL_BIN (default perl); trees from scripts/fetch-upstream.sh --releases
# (PVE_ENTRAID_GIT_BASE as there). Needs root, like tests/upstream/run.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
perl="${PVE_ENTRAID_PERL_BIN:-perl}"
list=tests/releases/RELEASES
results=tests/releases/RESULTS
dest=build/releases
mode=sample record=0 named=()
for arg in "$@"; do
    case "$arg" in
        --all) mode=all ;;
        --sample) mode=sample ;;
        --record) record=1 ;;
        -*) echo "usage: $0 [--sample | --all [--record] | RELEASE...]" >&2; exit 2 ;;
        *) mode=named; named+=("$arg") ;;
    esac
done
[ "$record" = 0 ] || [ "$mode" = all ] || { echo "$0: --record needs --all" >&2; exit 2; }

# the README table must be the one made from the committed results
if [ "$record" = 0 ] && ! perl tests/releases/table.pl "$results" --check README.md; then
    echo "$0: README.md's release table is not the one of $results (run: $0 --all --record)" >&2
    exit 1
fi

rows="$(grep -v '^#' "$list" | cut -d' ' -f1,2)"
case "$mode" in
    all) releases="$(cut -d' ' -f1 <<< "$rows")" ;;
    # rows are sorted by version within a line: the first and the last of each
    sample) releases="$(awk '{ if (!($2 in first)) { first[$2] = $1; order[n++] = $2 } last[$2] = $1 }
        END { for (i = 0; i < n; i++) { print first[order[i]]; if (last[order[i]] != first[order[i]]) print last[order[i]] } }' <<< "$rows")" ;;
    named) releases="${named[*]}" ;;
esac
# shellcheck disable=SC2086
bash scripts/fetch-upstream.sh --releases "$dest" $releases >/dev/null
if [ -e target/release/libpve_entraid.so ] && [ ! -e perl/blib/arch/auto/PVE/EntraID/XS/XS.so ]; then
    bash perl/build.sh
fi

mkdir -p "$dest/logs"
run="$dest/logs/RESULTS.$mode"
: > "$run"
changed=0 start=$SECONDS
for release in $releases; do
    line="$(awk -v r="$release" '$1 == r { print $2 }' <<< "$rows")"
    log="$dest/logs/$release.log"
    t0=$(date +%s.%N)
    status=0
    PVE_ENTRAID_UPSTREAM="$root/$dest/$release" PVE_ENTRAID_PVE="$line" PVE_ENTRAID_RELEASE="$release" \
        "$perl" -T -I"$root/tests/upstream/lib" tests/releases/t/release.t > "$log" 2>&1 || status=$?
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    verdict="$(sed -n 's/^# verdict: //p' "$log" | tail -n1)"
    if [ "$status" = 0 ] && [ -n "$verdict" ]; then
        outcome="$verdict"
    else
        # the first failed assertion says why
        why="$(grep -m1 '^not ok' "$log" | sed 's/^not ok [0-9]* - //' || true)"
        outcome="fail ${why:-exit status $status, see $log}"
    fi
    printf '%-8s %s %5.1fs %s\n' "$release" "$line" "$secs" "$outcome"
    echo "$release $line $outcome" >> "$run"
    recorded="$(awk -v r="$release" '$1 == r { $1 = ""; $2 = ""; sub(/^  /, ""); print }' "$results" 2>/dev/null || true)"
    if [ "$recorded" != "$outcome" ]; then
        echo "  outcome changed: $results records '${recorded:-nothing}'" >&2
        changed=1
    fi
done
echo "$(wc -w <<< "$releases") release(s) in $((SECONDS - start))s; logs in $dest/logs/"

if [ "$record" = 1 ]; then
    { echo "# Outcome per release of $list in the last full run: $0 --all --record wrote it,"
      echo "# README.md's release table is made from it (tests/releases/table.pl). release line outcome"
      cat "$run"; } > "$results.tmp"
    mv "$results.tmp" "$results"
    perl tests/releases/table.pl "$results" --write README.md
    echo "recorded in $results and README.md"
    changed=0
fi
if [ "$changed" = 1 ]; then
    echo "$0: an outcome differs from $results: find out why; once understood, run $0 --all --record" >&2
    exit 1
fi
