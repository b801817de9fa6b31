package xdp

// The BPF object is compiled by bpf2go and committed (bpf_bpfel.go,
// bpf_bpfel.o); .ci/bpf-generate-check verifies it matches the source.
// -idirafter: linux/types.h wants <asm/types.h>, which Debian keeps under
// the host's multiarch directory; the definitions used are the same on
// every architecture.
//go:generate go tool bpf2go -target bpfel -cflags "-O2 -g -Wall -Werror -idirafter /usr/include/x86_64-linux-gnu" -type svc_key -type svc -type real -type member_key -type flow_key -type flow -type persist_key -type persist -type counters -type ifmac -type event -type reason bpf bpf/xdp.c
