#!/usr/bin/env bash
# Make Debian's slurm-wlm (slurmctld, slurmd, sbatch, srun, scancel) and munge available for the Slurm test
# (tests/test_slurm.py), which starts its own munged, slurmctld and slurmds with a private configuration
# (SLURM_CONF). Installing the packages starts no service here (no systemd in containers); elsewhere the
# packaged services are stopped and disabled so that the test owns the binaries.
# Exits 0 when they are present or installed; otherwise one line "ensure_slurm: error: ..." and exit 1.
# The test never skips: without Slurm it fails.
set -u

fail() {
    echo "ensure_slurm: error: $1; tests/test_slurm.py needs it" >&2
    exit 1
}

missing() {
    for tool in slurmctld slurmd sbatch srun scancel scontrol munged; do
        command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || return 0
    done
    return 1
}

if ! missing; then
    echo "ensure_slurm: slurm-wlm and munge present"
    exit 0
fi
[ "${EUID:-$(id -u)}" = "0" ] || fail "slurm-wlm or munge is missing and installing them needs root (run: sudo bash scripts/ensure_slurm.sh)"
command -v apt-get >/dev/null 2>&1 || fail "slurm-wlm or munge is missing and apt-get is not available (run: apt-get install slurm-wlm munge)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed (no package mirror reachable?)"
apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
    || fail "apt-get install -y slurm-wlm munge failed"
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now slurmctld slurmd munge >/dev/null 2>&1 || true
fi
missing && fail "slurm-wlm and munge are installed but a binary (slurmctld, slurmd, sbatch, srun, scancel, scontrol, munged) is missing"
echo "ensure_slurm: installed slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null) and munge"
