package main

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestConflist(t *testing.T) {
	b, err := conflist(netip.MustParsePrefix("10.244.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				Ranges [][]struct{ Subnet string } `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 2 || c.Plugins[0].Type != "bridge" || c.Plugins[1].Type != "portmap" ||
		c.Plugins[0].IPAM.Ranges[0][0].Subnet != "10.244.1.0/24" {
		t.Errorf("conflist: %s", b)
	}
}

func TestNodeIPv4(t *testing.T) {
	var n node
	if err := json.Unmarshal([]byte(`{"metadata":{"name":"w"},"spec":{"podCIDR":"10.244.2.0/24","podCIDRs":["10.244.2.0/24","fd00::/64"]},
		"status":{"addresses":[{"type":"Hostname","address":"w"},{"type":"InternalIP","address":"fc00::3"},{"type":"InternalIP","address":"172.18.0.3"}]}}`), &n); err != nil {
		t.Fatal(err)
	}
	cidr, ip, ok := n.ipv4()
	if !ok || cidr.String() != "10.244.2.0/24" || ip.String() != "172.18.0.3" {
		t.Errorf("ipv4() = %s %s %v", cidr, ip, ok)
	}
}

func TestRouteMessage(t *testing.T) {
	m := newRouteMessage(netip.MustParsePrefix("10.244.1.0/24"), netip.MustParseAddr("172.18.0.3"), 7)
	if got := binary.NativeEndian.Uint32(m); int(got) != len(m) {
		t.Fatalf("length field %d, message %d bytes", got, len(m))
	}
	if typ := binary.NativeEndian.Uint16(m[4:]); typ != unix.RTM_NEWROUTE {
		t.Errorf("type %d", typ)
	}
	rt := m[unix.SizeofNlMsghdr:]
	if rt[0] != unix.AF_INET || rt[1] != 24 {
		t.Errorf("family %d, dst len %d", rt[0], rt[1])
	}
	attrs := rt[unix.SizeofRtMsg:]
	want := []byte{8, 0, unix.RTA_DST, 0, 10, 244, 1, 0, 8, 0, unix.RTA_GATEWAY, 0, 172, 18, 0, 3}
	if string(attrs) != string(want) {
		t.Errorf("attributes % x, want % x", attrs, want)
	}
}
