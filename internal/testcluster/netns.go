package testcluster

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// checkLoopbackOnly returns an error unless this process runs in a network
// namespace whose only route and only up interface is loopback. The test
// cluster's apiserver dials webhook Service IPs and node addresses; outside
// such a namespace that traffic could leave the machine.
func checkLoopbackOnly() error {
	const remedy = "run the test binary in a loopback-only network namespace, e.g. `go test -exec hack/netns-exec ./...` (make test does this)"
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list network interfaces: %w", err)
	}
	var bad []string
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagLoopback == 0 && ifc.Flags&net.FlagUp != 0 {
			bad = append(bad, "interface "+ifc.Name+" is up")
		}
	}
	for _, f := range []struct {
		path      string
		ifaceCol  int
		hasHeader bool
	}{{"/proc/net/route", 0, true}, {"/proc/net/ipv6_route", 9, false}} {
		data, err := os.ReadFile(f.path)
		if os.IsNotExist(err) { // IPv6 disabled: no routes
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", f.path, err)
		}
		for _, d := range RouteInterfaces(data, f.ifaceCol, f.hasHeader) {
			if msg := "a route leaves through " + d; d != "lo" && !slices.Contains(bad, msg) {
				bad = append(bad, msg)
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("refusing to start the test cluster: this network namespace reaches beyond loopback (%s); %s", strings.Join(bad, "; "), remedy)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil || lo.Flags&net.FlagUp == 0 {
		return fmt.Errorf("loopback is down in this network namespace; bring it up (`ip link set lo up`) or %s", remedy)
	}
	return nil
}

// RouteInterfaces returns the interface column (col) of a /proc/net
// route table; hasHeader skips its first line.
func RouteInterfaces(data []byte, col int, hasHeader bool) []string {
	var devs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for first := true; sc.Scan(); first = false {
		if first && hasHeader {
			continue
		}
		if fields := strings.Fields(sc.Text()); len(fields) > col {
			devs = append(devs, fields[col])
		}
	}
	return devs
}

// hasLocalAddr reports whether the CIDR is assigned to an interface.
func hasLocalAddr(cidr string) (bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if a.String() == cidr {
			return true, nil
		}
	}
	return false, nil
}

// setLoopbackAddr adds (add=true) or removes the CIDR on lo, so that the
// whole range is local and a listener on 0.0.0.0 answers for every address in
// it. It is only called after checkLoopbackOnly has passed.
func setLoopbackAddr(cidr string, add bool) error {
	has, err := hasLocalAddr(cidr)
	if err != nil {
		return err
	}
	if has == add {
		return nil
	}
	verb := "del"
	if add {
		verb = "add"
	}
	out, err := exec.Command("ip", "addr", verb, cidr, "dev", "lo").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip addr %s %s dev lo: %v: %s", verb, cidr, err, bytes.TrimSpace(out))
	}
	return nil
}
