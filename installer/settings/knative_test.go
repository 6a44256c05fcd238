package settings

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
)

func TestKnativeRules(t *testing.T) {
	tests := []struct {
		cm, key, value string
		ok             bool
	}{
		{"config-autoscaler", "enable-scale-to-zero", "false", true},
		{"config-autoscaler", "enable-scale-to-zero", "True", true},
		{"config-autoscaler", "enable-scale-to-zero", "off", false},
		{"config-autoscaler", "scale-to-zero-grace-period", "30s", true},
		{"config-autoscaler", "scale-to-zero-grace-period", "0s", false},
		{"config-autoscaler", "scale-to-zero-pod-retention-period", "-1s", false},
		{"config-autoscaler", "stable-window", "5s", false},
		{"config-autoscaler", "stable-window", "6.5s", false},
		{"config-autoscaler", "stable-window", "1h", true},
		{"config-autoscaler", "container-concurrency-target-default", "0.5", true},
		{"config-autoscaler", "container-concurrency-target-default", "0", false},
		{"config-autoscaler", "target-burst-capacity", "-1", true},
		{"config-autoscaler", "target-burst-capacity", "-2", false},
		{"config-autoscaler", "target-burst-capacity", "NaN", false},
		{"config-autoscaler", "min-scale", "2", true},
		{"config-autoscaler", "max-scale", "2147483648", false},
		{"config-autoscaler", "initial-scale", "1.5", false},
		{"config-autoscaler", "allow-zero-initial-scale", "true", true},
		{"config-autoscaler", "panic-window-percentage", "0.5", false},
		{"config-autoscaler", "max-scale-up-rate", "1", false},
		{"config-autoscaler", "max-scale-up-rate", "1000.0", true},
		{"config-autoscaler", "pod-autoscaler-class", "anything", true},     // a string
		{"config-autoscaler", "a-key-of-a-newer-release", "anything", true}, // not listed: not refused
		{"config-deployment", "progress-deadline", "600s", true},
		{"config-deployment", "progress-deadline", "1.5s", false},
		{"config-deployment", "queue-sidecar-cpu-request", "25m", true},
		{"config-deployment", "queue-sidecar-memory-limit", "-1Gi", false},
		{"config-defaults", "revision-timeout-seconds", "300", true},
		{"config-defaults", "revision-timeout-seconds", "5m", false},
		{"config-defaults", "revision-cpu-request", "400m", true},
		{"config-defaults", "container-concurrency-max-limit", "0", false},
		{"knative-serving/config-features", "kubernetes.podspec-affinity", "enabled", true},
		{"knative-serving/config-features", "secure-pod-defaults", "AllowRootBounded", true},
		{"knative-serving/config-features", "multi-container", "yes", false},
		{"knative-serving/config-features", "unlisted-flag", "whatever", true},
		{"knative-eventing/config-features", "transport-encryption", "strict", true},
		{"knative-eventing/config-features", "default-authorization-mode", "deny-all", true},
		{"knative-eventing/config-features", "default-authorization-mode", "sometimes", false},
		{"knative-eventing/config-features", "unlisted-flag", "Allowed", true},
		{"knative-eventing/config-features", "unlisted-flag", "whatever", false},
		{"knative-eventing/config-features", "apiserversources-nodeselector-zone", "a", true},
		{"config-network", "http-protocol", "redirected", true},
		{"config-network", "external-domain-tls", "Enabled", true},
		{"config-network", "system-internal-tls", "on", false},
		{"config-network", "rollout-duration", "-1", false},
		{"config-network", "default-external-scheme", "ftp", false},
		{"config-gc", "retain-since-create-time", "disabled", true},
		{"config-gc", "retain-since-create-time", "2d", false},
		{"config-gc", "max-non-active-revisions", "Disabled", true},
		{"knative-serving/config-leader-election", "buckets", "11", false},
		{"knative-eventing/config-leader-election", "lease-duration", "15s", true},
		{"config-leader-election", "buckets", "11", true}, // ambiguous: Check refuses the name
		{"config-br-defaults", "default-br-config", "clusterDefault:\n  brokerClass: MTChannelBasedBroker\n", true},
		{"config-br-defaults", "default-br-config", "clusterDefault: [", false},
		{"config-ping-defaults", "data-max-size", "-1", true},
		{"config-imc-event-dispatcher", "MaxIdleConnections", "many", false},
		{"config-observability", "metrics-protocol", "anything", true},
	}
	for _, tt := range tests {
		t.Run(tt.cm+"/"+tt.key+"="+tt.value, func(t *testing.T) {
			err := Settings{Config: map[string]map[string]Value{tt.cm: {tt.key: Value(tt.value)}}}.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate: %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), Root+".config."+tt.cm+"."+tt.key+": ") {
				t.Errorf("error %q does not name the setting", err)
			}
		})
	}
}

// TestKnativeRulesAcceptUpstream checks the rules accept every value the
// real Knative ConfigMaps of every release set or document in _example,
// so tmbox never refuses what Knative ships.
func TestKnativeRulesAcceptUpstream(t *testing.T) {
	dir := upstreamDir(t)
	c, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	documented := regexp.MustCompile(`(?m)^([A-Za-z0-9][-._A-Za-z0-9]*): *(.*)$`)
	checked := 0
	for _, release := range c.ReleaseNames() {
		r, err := c.Release(release)
		if err != nil {
			t.Fatal(err)
		}
		for _, comp := range r.ComponentList() {
			if comp.Name != catalog.KnativeServing && comp.Name != catalog.KnativeEventing && comp.Name != catalog.NetIstio {
				continue
			}
			for _, a := range comp.Assets {
				data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(a.Path)))
				if err != nil {
					t.Fatal(err)
				}
				docs, err := apply.DecodeManifest(data)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range docs {
					if u.GetKind() != "ConfigMap" {
						continue
					}
					keys, other := rulesFor(u.GetNamespace(), u.GetName())
					values := map[string]string{}
					cm, _ := u.Object["data"].(map[string]any)
					for k, v := range cm {
						if s, ok := v.(string); ok && k != exampleKey {
							values[k] = s
						}
					}
					if ex, ok := cm[exampleKey].(string); ok {
						for _, m := range documented.FindAllStringSubmatch(ex, -1) {
							if _, set := values[m[1]]; !set {
								values[m[1]] = exampleValue(m[2])
							}
						}
					}
					for k, v := range values {
						rule := keys[k]
						if rule == nil && !strings.HasPrefix(k, "_") {
							rule = other
						}
						if rule == nil || v == "|" || v == "" {
							continue
						}
						checked++
						if err := rule(k, v); err != nil {
							t.Errorf("release %s: %s/%s: upstream %s=%q refused: %v", release, u.GetNamespace(), u.GetName(), k, v, err)
						}
					}
				}
			}
		}
	}
	t.Logf("%d upstream values checked", checked)
	if checked < 100 {
		t.Errorf("only %d upstream values checked", checked)
	}
}

// exampleValue is the value of a documented "key: value  # comment" line
// of an _example block.
func exampleValue(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, `"`) {
		if end := strings.Index(s[1:], `"`); end >= 0 {
			if v, err := strconv.Unquote(s[:end+2]); err == nil {
				return v
			}
		}
	}
	if strings.HasPrefix(s, `'`) {
		if end := strings.Index(s[1:], `'`); end >= 0 {
			return s[1 : end+1]
		}
	}
	if i := strings.Index(s, " #"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}
