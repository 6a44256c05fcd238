package settings

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/tmbox/tmbox/catalog"
)

// Knative's namespaces: the ConfigMaps of config live in them.
const (
	ServingNamespace  = "knative-serving"
	EventingNamespace = "knative-eventing"
	IstioNamespace    = "istio-system"
)

// valueRule checks the value of one ConfigMap key as Knative parses it;
// key is for messages.
type valueRule func(key, value string) error

// knativeRules is what tmbox knows of the values Knative's ConfigMaps
// take, by NAMESPACE/NAME → key → rule, for Knative 1.21–1.23: the
// parser each key goes through upstream (knative.dev/pkg/configmap's
// AsBool is strconv.ParseBool, AsDuration time.ParseDuration, AsInt32 and
// AsInt64 strconv.ParseInt, AsFloat64 strconv.ParseFloat, AsQuantity
// resource.ParseQuantity; feature flags are Enabled/Disabled/Allowed
// compared case-insensitively) and the range checks the ConfigMap's
// validation applies to that key alone. Rules that relate two keys
// (initial-scale 0 needs allow-zero-initial-scale, max-scale within
// max-scale-limit, …) are left to Knative's webhook.
//
// A key tmbox does not list is not refused: Knative ignores keys it does
// not know, and a newer release may know more. The one exception is
// knative-eventing/config-features, whose parser refuses any value but a
// feature flag for every key, so every key there is checked (the "" entry
// is the rule for keys not listed).
//
// It is a function, not a table in a variable, so nothing can change it.
func knativeRules() map[string]map[string]valueRule {
	flag := enum("Enabled", "Disabled", "Allowed")
	onOff := enum("Enabled", "Disabled")
	leaderElection := map[string]valueRule{
		"lease-duration": duration(positive),
		"renew-deadline": duration(positive),
		"retry-period":   duration(positive),
		"buckets":        integer(32, between(1, 10)),
	}
	servingFeatures := map[string]valueRule{
		"secure-pod-defaults": enum("Enabled", "Disabled", "AllowRootBounded"),
	}
	for _, k := range []string{
		"multi-container", "multi-container-probing", "tag-header-based-routing", "autodetect-http2",
		"kubernetes.podspec-affinity", "kubernetes.podspec-topologyspreadconstraints", "kubernetes.podspec-hostaliases",
		"kubernetes.podspec-nodeselector", "kubernetes.podspec-tolerations", "kubernetes.podspec-fieldref",
		"kubernetes.podspec-runtimeclassname", "kubernetes.podspec-dnspolicy", "kubernetes.podspec-dnsconfig",
		"kubernetes.podspec-securitycontext", "kubernetes.podspec-shareprocessnamespace", "kubernetes.podspec-hostipc",
		"kubernetes.podspec-hostpid", "kubernetes.podspec-hostnetwork", "kubernetes.podspec-priorityclassname",
		"kubernetes.podspec-schedulername", "kubernetes.containerspec-addcapabilities", "kubernetes.podspec-dryrun",
		"kubernetes.podspec-volumes-emptydir", "kubernetes.podspec-volumes-image", "kubernetes.podspec-volumes-hostpath",
		"kubernetes.podspec-volumes-csi", "kubernetes.podspec-volumes-ephemeral", "kubernetes.podspec-init-containers",
		"kubernetes.podspec-persistent-volume-claim", "kubernetes.podspec-persistent-volume-write",
		"kubernetes.podspec-volumes-mount-propagation", "queueproxy.mount-podinfo", "queueproxy.resource-defaults",
	} {
		servingFeatures[k] = flag
	}
	quantities := func(prefix string, keys ...string) map[string]valueRule {
		m := map[string]valueRule{}
		for _, k := range keys {
			m[prefix+k] = quantity
		}
		return m
	}
	deployment := quantities("queue-sidecar-",
		"cpu-request", "cpu-limit", "memory-request", "memory-limit", "ephemeral-storage-request", "ephemeral-storage-limit")
	deployment["progress-deadline"] = duration(positive, wholeSeconds)
	deployment["digest-resolution-timeout"] = duration(positive)
	deployment["pod-is-always-schedulable"] = boolean
	defaults := quantities("revision-",
		"cpu-request", "cpu-limit", "memory-request", "memory-limit", "ephemeral-storage-request", "ephemeral-storage-limit")
	for _, k := range []string{"revision-timeout-seconds", "max-revision-timeout-seconds", "revision-response-start-timeout-seconds", "revision-idle-timeout-seconds"} {
		defaults[k] = integer(64, atLeast(0))
	}
	defaults["container-concurrency"] = integer(64, atLeast(0))
	defaults["container-concurrency-max-limit"] = integer(64, between(1, math.MaxInt32))
	defaults["allow-container-concurrency-zero"] = boolean

	return map[string]map[string]valueRule{
		ServingNamespace + "/config-autoscaler": {
			"enable-scale-to-zero":                    boolean,
			"allow-zero-initial-scale":                boolean,
			"max-scale-up-rate":                       float(above(1)),
			"max-scale-down-rate":                     float(above(1)),
			"container-concurrency-target-percentage": float(above(0), notAbove(100)),
			"container-concurrency-target-default":    float(above(0)),
			"requests-per-second-target-default":      float(notBelow(0.01)),
			"target-burst-capacity":                   float(burstCapacity),
			"panic-window-percentage":                 float(notBelow(1), notAbove(100)),
			"panic-threshold-percentage":              float(),
			"activator-capacity":                      float(notBelow(1)),
			"initial-scale":                           integer(32, atLeast(0)),
			"min-scale":                               integer(32, atLeast(0)),
			"max-scale":                               integer(32, atLeast(0)),
			"max-scale-limit":                         integer(32, atLeast(0)),
			"stable-window":                           duration(within(6*time.Second, time.Hour), wholeSeconds),
			"scale-down-delay":                        duration(nonNegative, wholeSeconds),
			"scale-to-zero-grace-period":              duration(positive),
			"scale-to-zero-pod-retention-period":      duration(nonNegative),
		},
		ServingNamespace + "/config-deployment": deployment,
		ServingNamespace + "/config-defaults":   defaults,
		ServingNamespace + "/config-features":   servingFeatures,
		ServingNamespace + "/config-network": {
			"auto-tls":                         onOff,
			"external-domain-tls":              onOff,
			"cluster-local-domain-tls":         onOff,
			"system-internal-tls":              onOff,
			"http-protocol":                    enum("Enabled", "Redirected", "Disabled"),
			"internal-encryption":              boolean,
			"autocreate-cluster-domain-claims": boolean,
			"enable-mesh-pod-addressability":   boolean,
			"mesh-compatibility-mode":          enum("auto", "enabled", "disabled"),
			"default-external-scheme":          enum("http", "https"),
			"rollout-duration":                 integer(64, atLeast(0)),
		},
		ServingNamespace + "/config-gc": {
			"retain-since-create-time":      orDisabled(duration(nonNegative)),
			"retain-since-last-active-time": orDisabled(duration(nonNegative)),
			"min-non-active-revisions":      integer(64, atLeast(0)),
			"max-non-active-revisions":      orDisabled(integer(64, atLeast(0))),
		},
		ServingNamespace + "/config-leader-election":  leaderElection,
		EventingNamespace + "/config-leader-election": leaderElection,
		EventingNamespace + "/config-features": {
			"":                           flag,
			"transport-encryption":       enum("Disabled", "Permissive", "Strict", "Enabled", "Allowed"),
			"default-authorization-mode": enum("Allow-All", "Allow-Same-Namespace", "Deny-All"),
		},
		EventingNamespace + "/config-br-defaults":          {"default-br-config": yamlDocument},
		EventingNamespace + "/config-br-default-channel":   {"channel-template-spec": yamlDocument},
		EventingNamespace + "/default-ch-webhook":          {"default-ch-config": yamlDocument},
		EventingNamespace + "/config-ping-defaults":        {"data-max-size": integer(64)},
		EventingNamespace + "/config-imc-event-dispatcher": {"MaxIdleConnections": integer(32, atLeast(0)), "MaxIdleConnectionsPerHost": integer(32, atLeast(0))},
	}
}

// rulesFor returns the rules of ConfigMap ns/name (ns "" for a bare
// name: the rules of the one Knative ConfigMap of that name tmbox knows,
// none when the name is in more than one namespace; Check refuses such a
// name) and the rule for keys not listed (nil: not checked).
func rulesFor(ns, name string) (map[string]valueRule, valueRule) {
	all := knativeRules()
	var keys map[string]valueRule
	if ns != "" {
		keys = all[ns+"/"+name]
	} else {
		found := 0
		for _, n := range []string{ServingNamespace, EventingNamespace} {
			if m, ok := all[n+"/"+name]; ok {
				keys = m
				found++
			}
		}
		if found != 1 {
			return nil, nil
		}
	}
	other := keys[""]
	// Eventing's ApiServerSource node selector entries (keys with
	// "nodeselector" in them) take any value.
	if other != nil {
		flag := other
		other = func(k, v string) error {
			if strings.Contains(strings.ToLower(k), "nodeselector") {
				return nil
			}
			return flag(k, v)
		}
	}
	return keys, other
}

// boolean is knative.dev/pkg/configmap.AsBool: strconv.ParseBool.
func boolean(_, v string) error {
	if _, err := strconv.ParseBool(v); err != nil {
		return fmt.Errorf("%s is not a boolean: want true or false", catalog.QuoteShort(v))
	}
	return nil
}

// quantity is AsQuantity: a Kubernetes quantity, not negative.
func quantity(_, v string) error {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return fmt.Errorf("%s is not a quantity such as 500m, 128Mi or 2", catalog.QuoteShort(v))
	}
	if q.Sign() < 0 {
		return fmt.Errorf("%s is negative", catalog.QuoteShort(v))
	}
	return nil
}

// yamlDocument is a value Knative parses as a YAML (or JSON) document.
func yamlDocument(_, v string) error {
	var x any
	if err := yaml.Unmarshal([]byte(v), &x); err != nil {
		return fmt.Errorf("not a YAML document: %w", err)
	}
	return nil
}

// enum takes one of values, compared case-insensitively as Knative does.
func enum(values ...string) valueRule {
	return func(_, v string) error {
		for _, want := range values {
			if strings.EqualFold(v, want) {
				return nil
			}
		}
		return fmt.Errorf("%s: want one of %s", catalog.QuoteShort(v), strings.Join(values, ", "))
	}
}

// orDisabled takes "disabled" or what rule takes.
func orDisabled(rule valueRule) valueRule {
	return func(k, v string) error {
		if strings.EqualFold(v, "disabled") {
			return nil
		}
		if err := rule(k, v); err != nil {
			return fmt.Errorf("%w, or disabled", err)
		}
		return nil
	}
}

// duration is AsDuration, with range checks.
func duration(checks ...func(time.Duration) error) valueRule {
	return func(_, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s is not a duration such as 30s, 5m or 1h", catalog.QuoteShort(v))
		}
		for _, c := range checks {
			if err := c(d); err != nil {
				return fmt.Errorf("%s: %w", v, err)
			}
		}
		return nil
	}
}

// positive refuses a duration of zero or less.
func positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be more than 0")
	}
	return nil
}

// nonNegative refuses a negative duration.
func nonNegative(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("must not be negative")
	}
	return nil
}

// wholeSeconds refuses a duration with a fraction of a second.
func wholeSeconds(d time.Duration) error {
	if d.Truncate(time.Second) != d {
		return fmt.Errorf("must be a whole number of seconds")
	}
	return nil
}

// within refuses a duration outside [lo, hi].
func within(lo, hi time.Duration) func(time.Duration) error {
	return func(d time.Duration) error {
		if d < lo || d > hi {
			return fmt.Errorf("must be from %v to %v", lo, hi)
		}
		return nil
	}
}

// integer is AsInt32 or AsInt64 (bits), with range checks.
func integer(bits int, checks ...func(int64) error) valueRule {
	return func(_, v string) error {
		i, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			return fmt.Errorf("%s is not a whole number (of at most %d bits)", catalog.QuoteShort(v), bits)
		}
		for _, c := range checks {
			if err := c(i); err != nil {
				return fmt.Errorf("%s: %w", v, err)
			}
		}
		return nil
	}
}

// atLeast refuses a number below lo.
func atLeast(lo int64) func(int64) error {
	return func(i int64) error {
		if i < lo {
			return fmt.Errorf("must be at least %d", lo)
		}
		return nil
	}
}

// between refuses a number outside [lo, hi].
func between(lo, hi int64) func(int64) error {
	return func(i int64) error {
		if i < lo || i > hi {
			return fmt.Errorf("must be from %d to %d", lo, hi)
		}
		return nil
	}
}

// float is AsFloat64, with range checks.
func float(checks ...func(float64) error) valueRule {
	return func(_, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s is not a number", catalog.QuoteShort(v))
		}
		for _, c := range checks {
			if err := c(f); err != nil {
				return fmt.Errorf("%s: %w", v, err)
			}
		}
		return nil
	}
}

// above refuses a number of lo or less.
func above(lo float64) func(float64) error {
	return func(f float64) error {
		if f <= lo {
			return fmt.Errorf("must be more than %g", lo)
		}
		return nil
	}
}

// notBelow refuses a number below lo.
func notBelow(lo float64) func(float64) error {
	return func(f float64) error {
		if f < lo {
			return fmt.Errorf("must be at least %g", lo)
		}
		return nil
	}
}

// notAbove refuses a number above hi.
func notAbove(hi float64) func(float64) error {
	return func(f float64) error {
		if f > hi {
			return fmt.Errorf("must be at most %g", hi)
		}
		return nil
	}
}

// burstCapacity is target-burst-capacity's rule: not negative, or -1
// (unlimited).
func burstCapacity(f float64) error {
	if f < 0 && f != -1 {
		return fmt.Errorf("must be 0 or more, or -1 for unlimited")
	}
	return nil
}
