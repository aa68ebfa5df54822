# Helpers shared by the bench/*.sh scripts (sourced; `$work` is the script's scratch directory).

# install_missing COMMAND:PACKAGE...: installs the Debian packages whose command is missing.
install_missing() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} (Debian)" >&2
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# Reading wrk's output saved as $work/NAME.txt.
rps() { awk '/Requests\/sec/ {print $2}' "$work/$1.txt"; }
pct() { awk -v p="$2" '$1 == p {print $2}' "$work/$1.txt"; }
# wrk prints 52.00us / 1.20ms / 1.00s; to microseconds.
to_us() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 } else { sub(/s$/,"",v); print v*1000000 } }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
