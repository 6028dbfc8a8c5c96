# Sourced by every script that loads the pinned upstream Proxmox VE sources (tests, demo,
# bench): exports PVE_ENTRAID_UPSTREAM, the directory holding pve9/ and pve8/, after making
# sure it holds exactly the commits tests/upstream/VERSIONS pins (scripts/fetch-upstream.sh:
# fetched once, then reused). Set PVE_ENTRAID_UPSTREAM yourself to use another directory.
PVE_ENTRAID_UPSTREAM="$(bash "$(dirname "${BASH_SOURCE[0]}")/fetch-upstream.sh" ${PVE_ENTRAID_UPSTREAM:+"$PVE_ENTRAID_UPSTREAM"})"
export PVE_ENTRAID_UPSTREAM
