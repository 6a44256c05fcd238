package testengine

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/tmbox/tmbox/internal/testcluster"
)

// netnsRemedy tells the caller how to get a namespace the engine accepts.
const netnsRemedy = "run inside a loopback-only network namespace made for it: `go test -exec hack/netns-exec ./...` (make test does this) or `hack/netns-exec CMD`"

// link is the part of `ip -j -d link show` the guard reads.
type link struct {
	Name     string `json:"ifname"`
	LinkType string `json:"link_type"`
	Master   string `json:"master"`
	Info     struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
}

// dockerBridge matches the names of the bridges dockerd makes: docker0 and
// br-<12 hex digits of the network ID>.
var dockerBridge = regexp.MustCompile(`^(docker0|br-[0-9a-f]{12})$`)

// currentNetNS returns this process's network namespace ("net:[4026…]").
func currentNetNS() (string, error) {
	return os.Readlink("/proc/self/ns/net")
}

// checkNetNS returns an error unless this process runs in a network
// namespace of its own (not PID 1's) whose only interfaces are loopback and
// what dockerd makes (its bridges, and veths attached to them), and whose
// routes all go through those. That is the guard against starting dockerd,
// its bridges, iptables rules and containers on the host's network.
func checkNetNS() error {
	self, err := currentNetNS()
	if err != nil {
		return fmt.Errorf("read this process's network namespace: %w", err)
	}
	if init, err := os.Readlink("/proc/1/ns/net"); err == nil && init == self {
		return fmt.Errorf("refusing to start the container engine in the host's network namespace (%s is PID 1's); %s", self, netnsRemedy)
	}
	out, err := exec.Command("ip", "-j", "-d", "link", "show").Output()
	if err != nil {
		return fmt.Errorf("list network interfaces (ip -j -d link show; install iproute2): %w", err)
	}
	var links []link
	if err := json.Unmarshal(out, &links); err != nil {
		return fmt.Errorf("parse `ip -j -d link show`: %w", err)
	}
	bad, allowed := foreignLinks(links)
	for _, f := range []struct {
		path      string
		ifaceCol  int
		hasHeader bool
	}{{"/proc/net/route", 0, true}, {"/proc/net/ipv6_route", 9, false}} {
		data, err := os.ReadFile(f.path)
		if os.IsNotExist(err) { // IPv6 disabled
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", f.path, err)
		}
		for _, dev := range testcluster.RouteInterfaces(data, f.ifaceCol, f.hasHeader) {
			if !allowed[dev] {
				bad = append(bad, "a route leaves through "+dev)
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("refusing to start the container engine: this network namespace (%s) reaches beyond loopback and docker's own bridges (%s); %s", self, strings.Join(dedup(bad), "; "), netnsRemedy)
	}
	up := false
	for _, l := range links {
		if l.Name == "lo" {
			up = true
		}
	}
	if !up {
		return fmt.Errorf("no loopback interface in this network namespace; %s", netnsRemedy)
	}
	return nil
}

// foreignLinks returns a description of every interface that is neither
// loopback nor one of dockerd's, and the set of interfaces a route may use.
func foreignLinks(links []link) (bad []string, allowed map[string]bool) {
	allowed = map[string]bool{"lo": true}
	for _, l := range links {
		if l.Info.Kind == "bridge" && dockerBridge.MatchString(l.Name) {
			allowed[l.Name] = true
		}
	}
	for _, l := range links {
		switch {
		case l.Name == "lo" && l.LinkType == "loopback":
		case allowed[l.Name]:
		case l.Info.Kind == "veth" && dockerBridge.MatchString(l.Master) && allowed[l.Master]:
			// a container's end is in the container; this end is on a
			// docker bridge (and may carry an IPv6 link-local route)
			allowed[l.Name] = true
		default:
			kind := l.Info.Kind
			if kind == "" {
				kind = l.LinkType
			}
			bad = append(bad, fmt.Sprintf("interface %s (%s) is not docker's", l.Name, kind))
		}
	}
	return bad, allowed
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
