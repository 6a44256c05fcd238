package support

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestRedactRules: each rule replaces its credentials with Mask, counts
// them, and leaves what is around them.
func TestRedactRules(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// secrets must not survive; keep must.
		secrets, keep []string
		// want is the rule counts.
		want map[string]int
	}{
		{
			name:    "bearer header",
			in:      "GET /apis Authorization: Bearer xyz\n",
			secrets: []string{"xyz"}, keep: []string{"Authorization: Bearer " + Mask},
			want: map[string]int{"bearer-token": 1},
		},
		{
			name:    "bare bearer",
			in:      `token is Bearer abc.def-ghi/jk== then`,
			secrets: []string{"abc.def-ghi/jk=="}, keep: []string{"then"},
			want: map[string]int{"bearer-token": 1},
		},
		{
			name:    "basic authorization header",
			in:      "authorization: Basic dXNlcjpwYXNz\n",
			secrets: []string{"dXNlcjpwYXNz"},
			want:    map[string]int{"authorization-header": 1},
		},
		{
			name:    "url credentials",
			in:      "pulling https://user:pw@host/path and git+ssh://git:hunter3@example.com\n",
			secrets: []string{"pw@", "hunter3"}, keep: []string{"https://user:" + Mask + "@host/path"},
			want: map[string]int{"url-credentials": 2},
		},
		{
			name:    "private key",
			in:      "tls.key: |\n  -----BEGIN RSA PRIVATE KEY-----\n  MIIEowIBAAKCAQEA\n  -----END RSA PRIVATE KEY-----\nnext: 1\n",
			secrets: []string{"MIIEowIBAAKCAQEA"}, keep: []string{"-----BEGIN RSA PRIVATE KEY-----", "next: 1"},
			want: map[string]int{"private-key": 1},
		},
		{
			name:    "private key cut off",
			in:      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
			secrets: []string{"MIIEvQIBADANBg"},
			want:    map[string]int{"private-key": 1},
		},
		{
			name:    "private key in JSON",
			in:      `{"key":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIO\n-----END EC PRIVATE KEY-----\n"}`,
			secrets: []string{"MHcCAQEEIO"},
			want:    map[string]int{"private-key": 1},
		},
		{
			name:    "docker auth",
			in:      `{"auths":{"registry.example.com":{"auth":"dXNlcjpzM2NyM3Q="}}}`,
			secrets: []string{"dXNlcjpzM2NyM3Q="}, keep: []string{"registry.example.com"},
			want: map[string]int{"docker-auth": 1},
		},
		{
			name:    "yaml password",
			in:      "data:\n  password: hunter2\n  user: admin\n",
			secrets: []string{"hunter2"}, keep: []string{"user: admin", `password: "` + Mask + `"`},
			want: map[string]int{"key-value": 1},
		},
		{
			name:    "yaml quoted",
			in:      "db_passwd: 'two words'\nclient-secret: \"s3 cr3t\"\n",
			secrets: []string{"two words", "s3 cr3t"},
			want:    map[string]int{"key-value": 2},
		},
		{
			name:    "json",
			in:      `{"apiKey": "k-123", "access_key":"AK9", "name":"x", "token": 12345}`,
			secrets: []string{"k-123", "AK9", "12345"}, keep: []string{`"name":"x"`},
			want: map[string]int{"key-value": 3},
		},
		{
			name:    "escaped json in an annotation",
			in:      `last-applied: '{\"data\":{\"password\":\"hunter2\"}}'`,
			secrets: []string{"hunter2"},
			want:    map[string]int{"key-value": 1},
		},
		{
			name:    "env var and flags",
			in:      "env API_TOKEN=abc123 --db-password=p4ss SECRET_KEY=zz9 url?access_token=qq7&x=1\n",
			secrets: []string{"abc123", "p4ss", "zz9", "qq7"}, keep: []string{"&x=1"},
			want: map[string]int{"key-value": 4},
		},
		{
			name:    "pod env pair",
			in:      "    env:\n    - name: API_TOKEN\n      value: abc123\n    - name: LOG_LEVEL\n      value: debug\n",
			secrets: []string{"abc123"}, keep: []string{"value: debug", "name: API_TOKEN"},
			want: map[string]int{"env-pair": 1},
		},
		{
			name:    "pod env pair quoted",
			in:      "- name: \"DB_PASSWORD\"\n  value: \"hunter 2\"\n",
			secrets: []string{"hunter 2"},
			want:    map[string]int{"env-pair": 1},
		},
		{
			name:    "env pair in JSON",
			in:      `"env":[{"name":"GITHUB_TOKEN","value":"ghp_x1"},{"name":"MODE","value":"fast"}]`,
			secrets: []string{"ghp_x1"}, keep: []string{`"value":"fast"`},
			want: map[string]int{"env-pair": 1},
		},
		{
			name:    "jwt",
			in:      "saw eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl in a log\n",
			secrets: []string{"eyJhbGciOiJSUzI1NiJ9", "c2lnbmF0dXJl"}, keep: []string{"in a log"},
			want: map[string]int{"jwt": 1},
		},
		{
			name:    "base64 json",
			in:      "config: eyJhdXRocyI6eyJyZWcuZXhhbXBsZS5jb20iOnt9fX0=\n",
			secrets: []string{"eyJhdXRocyI6"},
			want:    map[string]int{"jwt": 1},
		},
		{
			name:    "jwt under a token key",
			in:      "token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\n",
			secrets: []string{"eyJhbGci"}, keep: []string{`token: "` + Mask + `"`},
			want: map[string]int{"key-value": 1},
		},
		{
			name:    "aws access key id",
			in:      "using AKIAIOSFODNN7EXAMPLE now",
			secrets: []string{"AKIAIOSFODNN7EXAMPLE"},
			want:    map[string]int{"aws-access-key-id": 1},
		},
		{
			name: "names and booleans are kept",
			in: "secretName: istio-ca-secret\nautomountServiceAccountToken: false\ntokenExpirationSeconds: 3600\nkind: Secret\n" +
				"resources: [secrets]\nimagePullSecrets: []\nsecretKeyRef:\n  name: x\npasswordFile: /etc/pw\n" +
				"- name: ENABLE_SECRET_INFORMER_FILTERING\n  value: \"false\"\n- name: TOKEN_PATH\n  value: /var/run/token\n",
			keep: []string{`value: "false"`, "value: /var/run/token", "secretName: istio-ca-secret", "automountServiceAccountToken: false", "tokenExpirationSeconds: 3600", "passwordFile: /etc/pw", "imagePullSecrets: []"},
			want: map[string]int{},
		},
		{
			name: "already redacted",
			in:   "password: \"" + Mask + "\"\nAuthorization: Bearer " + Mask + "\n",
			want: map[string]int{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, counts := NewRedactor().Redact([]byte(tt.in))
			got := string(out)
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("%q survived:\n%s", s, got)
				}
			}
			for _, k := range tt.keep {
				if !strings.Contains(got, k) {
					t.Errorf("lost %q:\n%s", k, got)
				}
			}
			if len(tt.secrets) > 0 && !strings.Contains(got, Mask) {
				t.Errorf("no mask in:\n%s", got)
			}
			if !maps.Equal(counts, tt.want) {
				t.Errorf("counts %v, want %v\n%s", counts, tt.want, got)
			}
			// Redacting again finds nothing more.
			if again, n := NewRedactor().Redact(out); len(n) != 0 || string(again) != got {
				t.Errorf("a second pass changed %v:\n%s", n, again)
			}
		})
	}
}

// TestRedactKeepsYAML: redacted YAML still parses, with the masks as
// strings.
func TestRedactKeepsYAML(t *testing.T) {
	in := "data:\n  password: hunter2\n  token: 12345\nenv:\n- name: API_TOKEN\n  value: abc123\n"
	out, _ := NewRedactor().Redact([]byte(in))
	var v struct {
		Data map[string]string `json:"data"`
		Env  []struct{ Name, Value string }
	}
	if err := yaml.Unmarshal(out, &v); err != nil {
		t.Fatalf("redacted YAML does not parse: %v\n%s", err, out)
	}
	if v.Data["password"] != Mask || v.Data["token"] != Mask || v.Env[0].Value != Mask {
		t.Errorf("got %+v", v)
	}
}

// TestRulesDocumented: every rule has a name, a description and a value
// group, and names are unique.
func TestRulesDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if r.Name == "" || r.Description == "" || seen[r.Name] {
			t.Errorf("rule %+v: empty or duplicate name or description", r.Name)
		}
		seen[r.Name] = true
		if !slices.Contains(r.Pattern.SubexpNames(), "v") {
			t.Errorf("rule %s has no value group", r.Name)
		}
	}
}
