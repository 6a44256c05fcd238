package settings

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestDecodeFull(t *testing.T) {
	doc := dedent(`
		apiVersion: tmbox.dev/v1alpha1
		kind: InstallConfig
		platform:
		  domain: apps.example.com
		  tls:
		    certFile: /etc/tmbox/tls.crt
		    keyFile: /etc/tmbox/tls.key
		    redirectHTTP: true
		  registry:
		    pullSecret: /etc/tmbox/config.json
		    caFile: /etc/tmbox/ca.pem
		    skipTagResolving: [registry.internal:5000, mirror.local]
		  highAvailability:
		    replicas: 3
		  config:
		    config-autoscaler:
		      enable-scale-to-zero: false
		      container-concurrency-target-default: 100
		      stable-window: 90s
		      panic-window-percentage: 10.0
		    knative-eventing/config-features:
		      new-apiserversource-filters: enabled
		    config-br-defaults:
		      default-br-config: |
		        clusterDefault:
		          brokerClass: MTChannelBasedBroker
		  workloads:
		    knative-serving/activator:
		      replicas: 0
		      containers:
		        activator:
		          resources:
		            requests: {cpu: 500m, memory: 128Mi}
		            limits: {memory: 1Gi}
		          env: {GOGC: "200"}
		      nodeSelector: {kubernetes.io/os: linux}
		      tolerations:
		      - {key: dedicated, operator: Equal, value: knative, effect: NoSchedule}
		      affinity:
		        nodeAffinity:
		          requiredDuringSchedulingIgnoredDuringExecution:
		            nodeSelectorTerms:
		            - matchExpressions: [{key: zone, operator: In, values: [a, b]}]
		      annotations: {example.com/team: serving}
		      labels: {example.com/tier: control-plane}
		  gateway:
		    type: LoadBalancer
		    loadBalancerIP: 192.0.2.10
		    annotations: {service.beta.kubernetes.io/aws-load-balancer-internal: "true"}
		`)
	got, err := Decode(platformNode(t, doc), "cfg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		Domain:           "apps.example.com",
		TLS:              &TLS{CertFile: "/etc/tmbox/tls.crt", KeyFile: "/etc/tmbox/tls.key", RedirectHTTP: true},
		Registry:         &Registry{PullSecret: "/etc/tmbox/config.json", CAFile: "/etc/tmbox/ca.pem", SkipTagResolving: []string{"registry.internal:5000", "mirror.local"}},
		HighAvailability: &HighAvailability{Replicas: 3},
		Config: map[string]map[string]Value{
			"config-autoscaler": {
				"enable-scale-to-zero":                 "false",
				"container-concurrency-target-default": "100",
				"stable-window":                        "90s",
				"panic-window-percentage":              "10.0", // as written
			},
			"knative-eventing/config-features": {"new-apiserversource-filters": "enabled"},
			"config-br-defaults":               {"default-br-config": "clusterDefault:\n  brokerClass: MTChannelBasedBroker\n"},
		},
		Workloads: map[string]Workload{
			"knative-serving/activator": {
				Replicas: ptr(int32(0)),
				Containers: map[string]Container{"activator": {
					Resources: map[string]map[string]string{"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
					Env:       map[string]string{"GOGC": "200"},
				}},
				NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
				Tolerations:  []map[string]any{{"key": "dedicated", "operator": "Equal", "value": "knative", "effect": "NoSchedule"}},
				Affinity: map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
					"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{"key": "zone", "operator": "In", "values": []any{"a", "b"}}}}},
				}}},
				Annotations: map[string]string{"example.com/team": "serving"},
				Labels:      map[string]string{"example.com/tier": "control-plane"},
			},
		},
		Gateway: &Gateway{Type: "LoadBalancer", LoadBalancerIP: "192.0.2.10", Annotations: map[string]string{"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}},
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("decoded\n%s\nwant\n%s", gj, wj)
	}
	// What Decode returns survives tmbox's state (JSON) unchanged.
	data, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back Settings
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Config, got.Config) || !reflect.DeepEqual(back.TLS, got.TLS) {
		t.Errorf("JSON round trip changed the settings: %s", data)
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, doc := range []string{"platform:\n", "platform: null\n", "platform: {}\n"} {
		s, err := Decode(platformNode(t, doc), "cfg.yaml")
		if err != nil || !s.IsZero() {
			t.Errorf("%q: got %+v, %v; want zero settings", doc, s, err)
		}
	}
	if s, err := Decode(nil, "cfg.yaml"); err != nil || !s.IsZero() {
		t.Errorf("nil node: got %+v, %v", s, err)
	}
}

// TestDecodeErrors checks each bad input is refused with FILE:LINE:
// PATH: and a message saying what is wrong. Line 1 is "platform:".
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each error, in order, as a substring
	}{
		{"unknown top-level key", `
			platform:
			  domian: apps.example.com`,
			[]string{`cfg.yaml:2: platform.domian: unknown key "domian" (known at platform: config, domain, gateway, highAvailability, registry, tls, workloads)`}},
		{"unknown tls key", `
			platform:
			  tls:
			    certFile: a.crt
			    keyFile: a.key
			    cert: x`,
			[]string{`cfg.yaml:5: platform.tls.cert: unknown key "cert" (known at platform.tls: certFile, keyFile, redirectHTTP)`}},
		{"unknown registry key", `
			platform:
			  registry:
			    pullSecrets: a.json`,
			[]string{`cfg.yaml:3: platform.registry.pullSecrets: unknown key "pullSecrets" (known at platform.registry: caFile, pullSecret, skipTagResolving)`}},
		{"unknown highAvailability key", `
			platform:
			  highAvailability:
			    replica: 2`,
			[]string{`cfg.yaml:3: platform.highAvailability.replica: unknown key "replica" (known at platform.highAvailability: replicas)`}},
		{"unknown workload key", `
			platform:
			  workloads:
			    knative-serving/activator:
			      replica: 2`,
			[]string{`cfg.yaml:4: platform.workloads.knative-serving/activator.replica: unknown key "replica" (known at platform.workloads.knative-serving/activator: affinity, annotations, containers, labels, nodeSelector, replicas, tolerations)`}},
		{"unknown container key", `
			platform:
			  workloads:
			    knative-serving/activator:
			      containers:
			        activator:
			          resource: {}`,
			[]string{`cfg.yaml:6: platform.workloads.knative-serving/activator.containers.activator.resource: unknown key "resource" (known at platform.workloads.knative-serving/activator.containers.activator: env, resources)`}},
		{"unknown gateway key", `
			platform:
			  gateway:
			    kind: NodePort`,
			[]string{`cfg.yaml:3: platform.gateway.kind: unknown key "kind" (known at platform.gateway: annotations, loadBalancerIP, type)`}},
		{"key set twice", `
			platform:
			  domain: a.example.com
			  domain: b.example.com`,
			[]string{`cfg.yaml:3: platform.domain: set twice (first at line 2)`}},
		{"config key set twice", `
			platform:
			  config:
			    config-autoscaler:
			      enable-scale-to-zero: "true"
			      enable-scale-to-zero: "false"`,
			[]string{`cfg.yaml:5: platform.config.config-autoscaler.enable-scale-to-zero: set twice (first at line 4)`}},
		{"list as a config value", `
			platform:
			  config:
			    config-autoscaler:
			      enable-scale-to-zero: [true]`,
			[]string{`cfg.yaml:4: platform.config.config-autoscaler.enable-scale-to-zero: a list is not a ConfigMap value: want a string, number or boolean`}},
		{"mapping as a config value", `
			platform:
			  config:
			    config-network:
			      http-protocol:
			        mode: Redirected`,
			[]string{`cfg.yaml:4: platform.config.config-network.http-protocol: a mapping is not a ConfigMap value`}},
		{"null config value", `
			platform:
			  config:
			    config-network:
			      http-protocol:`,
			[]string{`cfg.yaml:4: platform.config.config-network.http-protocol: no value: write "" for an empty one`}},
		{"config as a list", `
			platform:
			  config: [config-autoscaler]`,
			[]string{`cfg.yaml:2: platform.config: want a mapping, not a list`}},
		{"negative replicas", `
			platform:
			  workloads:
			    knative-serving/activator:
			      replicas: -1`,
			[]string{`cfg.yaml:4: platform.workloads.knative-serving/activator.replicas: -1: want 0 or more`}},
		{"replicas as text", `
			platform:
			  workloads:
			    knative-serving/activator:
			      replicas: three`,
			[]string{`cfg.yaml:4: platform.workloads.knative-serving/activator.replicas: want a whole number, not "three"`}},
		{"high availability zero", `
			platform:
			  highAvailability:
			    replicas: 0`,
			[]string{`cfg.yaml:3: platform.highAvailability.replicas: 0: want 1 to 100`}},
		{"high availability too many", `
			platform:
			  highAvailability: {replicas: 101}`,
			[]string{`cfg.yaml:2: platform.highAvailability.replicas: 101: want 1 to 100`}},
		{"bad quantity", `
			platform:
			  workloads:
			    knative-serving/activator:
			      containers:
			        activator:
			          resources:
			            limits:
			              memory: 1GB`,
			[]string{`cfg.yaml:8: platform.workloads.knative-serving/activator.containers.activator.resources.limits.memory: "1GB" is not a quantity`}},
		{"request above limit", `
			platform:
			  workloads:
			    knative-serving/activator:
			      containers:
			        activator:
			          resources:
			            requests: {cpu: "2"}
			            limits: {cpu: 500m}`,
			[]string{`cfg.yaml:7: platform.workloads.knative-serving/activator.containers.activator.resources.requests.cpu: request 2 is above the limit 500m`}},
		{"resources other than requests and limits", `
			platform:
			  workloads:
			    knative-serving/activator:
			      containers:
			        activator:
			          resources:
			            limit: {cpu: "1"}`,
			[]string{`cfg.yaml:7: platform.workloads.knative-serving/activator.containers.activator.resources.limit: unknown key "limit" (known: limits, requests)`}},
		{"bad env name", `
			platform:
			  workloads:
			    knative-serving/activator:
			      containers:
			        activator:
			          env: {"1BAD": x}`,
			[]string{`cfg.yaml:6: platform.workloads.knative-serving/activator.containers.activator.env.1BAD: not an environment variable name`}},
		{"bad duration for a documented key", `
			platform:
			  config:
			    config-autoscaler:
			      stable-window: 60`,
			[]string{`cfg.yaml:4: platform.config.config-autoscaler.stable-window: "60" is not a duration such as 30s, 5m or 1h`}},
		{"duration out of Knative's range", `
			platform:
			  config:
			    knative-serving/config-autoscaler:
			      stable-window: 2h`,
			[]string{`cfg.yaml:4: platform.config.knative-serving/config-autoscaler.stable-window: 2h: must be from 6s to 1h0m0s`}},
		{"bad boolean for a documented key", `
			platform:
			  config:
			    config-autoscaler:
			      enable-scale-to-zero: "no"`,
			[]string{`cfg.yaml:4: platform.config.config-autoscaler.enable-scale-to-zero: "no" is not a boolean`}},
		{"bad feature flag", `
			platform:
			  config:
			    knative-serving/config-features:
			      kubernetes.podspec-affinity: on`,
			[]string{`cfg.yaml:4: platform.config.knative-serving/config-features.kubernetes.podspec-affinity: "on": want one of Enabled, Disabled, Allowed`}},
		{"bad eventing flag of a key tmbox does not list", `
			platform:
			  config:
			    knative-eventing/config-features:
			      some-new-feature: yes-please`,
			[]string{`cfg.yaml:4: platform.config.knative-eventing/config-features.some-new-feature: "yes-please": want one of Enabled, Disabled, Allowed`}},
		{"bad quantity for a documented key", `
			platform:
			  config:
			    config-deployment:
			      queue-sidecar-memory-limit: lots`,
			[]string{`cfg.yaml:4: platform.config.config-deployment.queue-sidecar-memory-limit: "lots" is not a quantity`}},
		{"bad http-protocol", `
			platform:
			  config:
			    config-network:
			      http-protocol: Sometimes`,
			[]string{`cfg.yaml:4: platform.config.config-network.http-protocol: "Sometimes": want one of Enabled, Redirected, Disabled`}},
		{"_example refused", `
			platform:
			  config:
			    config-autoscaler:
			      _example: "# mine"`,
			[]string{`cfg.yaml:4: platform.config.config-autoscaler._example: _example documents the other keys and stays as shipped`}},
		{"bad ConfigMap key", `
			platform:
			  config:
			    config-autoscaler:
			      "bad key": x`,
			[]string{`cfg.yaml:4: platform.config.config-autoscaler.bad key: not a ConfigMap key`}},
		{"bad ConfigMap name", `
			platform:
			  config:
			    Config_Autoscaler:
			      a: b`,
			[]string{`cfg.yaml:3: platform.config.Config_Autoscaler: ConfigMap name "Config_Autoscaler"`}},
		{"bad gateway type", `
			platform:
			  gateway:
			    type: Ingress`,
			[]string{`cfg.yaml:3: platform.gateway.type: "Ingress": want LoadBalancer, NodePort or ClusterIP`}},
		{"loadBalancerIP without LoadBalancer", `
			platform:
			  gateway:
			    type: NodePort
			    loadBalancerIP: 192.0.2.10`,
			[]string{`cfg.yaml:4: platform.gateway.loadBalancerIP: set with type NodePort: a load balancer address needs type LoadBalancer`}},
		{"loadBalancerIP not an IP", `
			platform:
			  gateway:
			    loadBalancerIP: lb.example.com`,
			[]string{`cfg.yaml:3: platform.gateway.loadBalancerIP: "lb.example.com" is not an IP address`}},
		{"tls with only certFile", `
			platform:
			  tls:
			    certFile: a.crt`,
			[]string{`cfg.yaml:2: platform.tls: certFile is set but keyFile is not: both are needed`}},
		{"redirectHTTP as text", `
			platform:
			  tls: {certFile: a.crt, keyFile: a.key, redirectHTTP: "yes"}`,
			[]string{`cfg.yaml:2: platform.tls.redirectHTTP: want true or false, not "yes"`}},
		{"bad domain", `
			platform:
			  domain: Apps_Example.com`,
			[]string{`cfg.yaml:2: platform.domain: "Apps_Example.com" is not a DNS domain`}},
		{"skipTagResolving with a scheme and a path", `
			platform:
			  registry:
			    skipTagResolving:
			    - https://registry.internal
			    - registry.internal/team`,
			[]string{
				`cfg.yaml:4: platform.registry.skipTagResolving[0]: registry "https://registry.internal": want HOST[:PORT][/PREFIX] without a scheme`,
				`cfg.yaml:5: platform.registry.skipTagResolving[1]: registry "registry.internal/team": want HOST[:PORT] without a path`,
			}},
		{"skipTagResolving not a list", `
			platform:
			  registry:
			    skipTagResolving: registry.internal`,
			[]string{`cfg.yaml:3: platform.registry.skipTagResolving: want a list, not "registry.internal"`}},
		{"workload not namespace/name", `
			platform:
			  workloads:
			    activator: {replicas: 2}`,
			[]string{`cfg.yaml:3: platform.workloads.activator: want NAMESPACE/NAME of a Deployment or StatefulSet`}},
		{"toleration with an unknown field", `
			platform:
			  workloads:
			    knative-serving/activator:
			      tolerations:
			      - {key: a, operator: Exists}
			      - {key: b, operator: Exists, effects: NoSchedule}`,
			[]string{`cfg.yaml:6: platform.workloads.knative-serving/activator.tolerations[1]: not a core/v1 Toleration: json: unknown field "effects"`}},
		{"toleration Exists with a value", `
			platform:
			  workloads:
			    knative-serving/activator:
			      tolerations:
			      - {key: a, operator: Exists, value: b}`,
			[]string{`cfg.yaml:5: platform.workloads.knative-serving/activator.tolerations[0]: operator Exists takes no value`}},
		{"affinity with an unknown field", `
			platform:
			  workloads:
			    knative-serving/activator:
			      affinity:
			        nodeAfinity: {}`,
			[]string{`cfg.yaml:4: platform.workloads.knative-serving/activator.affinity: not a core/v1 Affinity: json: unknown field "nodeAfinity"`}},
		{"affinity with a key set twice", `
			platform:
			  workloads:
			    knative-serving/activator:
			      affinity:
			        nodeAffinity: {}
			        nodeAffinity: {}`,
			[]string{`cfg.yaml:6: platform.workloads.knative-serving/activator.affinity.nodeAffinity: set twice (first at line 5)`}},
		{"bad node selector value", `
			platform:
			  workloads:
			    knative-serving/activator:
			      nodeSelector: {kubernetes.io/os: "linux os"}`,
			[]string{`cfg.yaml:4: platform.workloads.knative-serving/activator.nodeSelector.kubernetes.io/os: value "linux os"`}},
		{"bad annotation key", `
			platform:
			  gateway:
			    annotations: {"bad key!": x}`,
			[]string{`cfg.yaml:3: platform.gateway.annotations.bad key!: annotation key "bad key!"`}},
		{"platform not a mapping", `
			platform: [a]`,
			[]string{`cfg.yaml:1: platform: want a mapping, not a list`}},
		{"several errors in file order", `
			platform:
			  highAvailability: {replicas: 0}
			  domain: "-bad-"
			  gateway: {type: Ingress}`,
			[]string{
				`cfg.yaml:2: platform.highAvailability.replicas`,
				`cfg.yaml:3: platform.domain`,
				`cfg.yaml:4: platform.gateway.type`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(platformNode(t, dedent(tt.yaml)), "cfg.yaml")
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			errs := Errors(err)
			if len(errs) != len(tt.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.want[i]) {
					t.Errorf("error %d:\n  %s\nwant it to contain\n  %s", i, e, tt.want[i])
				}
				if e.Line == 0 || e.File != "cfg.yaml" {
					t.Errorf("error %d has no file and line: %+v", i, e)
				}
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	cause := errors.New("want 0 or more")
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Path: "platform.x", Err: cause}, "platform.x: want 0 or more"},
		{&Error{File: "cfg.yaml", Path: "platform.x", Err: cause}, "cfg.yaml: platform.x: want 0 or more"},
		{&Error{File: "cfg.yaml", Line: 7, Path: "platform.x", Err: cause}, "cfg.yaml:7: platform.x: want 0 or more"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
		if !errors.Is(tt.err, cause) {
			t.Errorf("%v does not unwrap to its cause", tt.err)
		}
	}
}

func TestLocate(t *testing.T) {
	node := platformNode(t, dedent(`
		platform:
		  config:
		    config-features:
		      a: enabled
		  workloads:
		    knative-serving/nope: {replicas: 1}
		`))
	err := errors.Join(
		&Error{Path: "platform.workloads.knative-serving/nope", Err: errors.New("no such workload")},
		&Error{Path: "platform.config.config-features", Err: errors.New("ambiguous")},
	)
	got := Locate(err, node, "cfg.yaml").Error()
	want := "cfg.yaml:3: platform.config.config-features: ambiguous\ncfg.yaml:6: platform.workloads.knative-serving/nope: no such workload"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestValueUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    Value
		wantErr bool
	}{
		{`"text"`, "text", false},
		{`12.50`, "12.50", false},
		{`true`, "true", false},
		{`null`, "", true},
		{`[1]`, "", true},
		{`{"a": 1}`, "", true},
	}
	for _, tt := range tests {
		var v Value
		err := json.Unmarshal([]byte(tt.in), &v)
		if (err != nil) != tt.wantErr || v != tt.want {
			t.Errorf("JSON %s: got %q, %v", tt.in, v, err)
		}
		if tt.in == "null" {
			continue // yaml.v3 leaves a null alone without asking the Value
		}
		var y Value
		err = yaml.Unmarshal([]byte(tt.in), &y)
		if (err != nil) != tt.wantErr || y != tt.want {
			t.Errorf("YAML %s: got %q, %v", tt.in, y, err)
		}
	}
}

func TestIsZero(t *testing.T) {
	tests := []struct {
		s    Settings
		want bool
	}{
		{Settings{}, true},
		{Settings{Config: map[string]map[string]Value{}}, true},
		{Settings{Domain: "a.example.com"}, false},
		{Settings{HighAvailability: &HighAvailability{Replicas: 2}}, false},
		{Settings{Workloads: map[string]Workload{"a/b": {}}}, false},
	}
	for _, tt := range tests {
		if got := tt.s.IsZero(); got != tt.want {
			t.Errorf("%+v: IsZero %v, want %v", tt.s, got, tt.want)
		}
	}
}
