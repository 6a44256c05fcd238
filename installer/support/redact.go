package support

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces every redacted value.
const Mask = "***REDACTED***"

// sensitive is what a key's name contains when its value is a credential.
const sensitive = `(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key)`

// key is a key (YAML, JSON, env var, flag, query parameter) whose name
// contains a sensitive word.
const key = `[A-Za-z0-9_.-]*` + sensitive + `[A-Za-z0-9_.-]*`

// bare is an unquoted value: it ends at whitespace, a quote, a backslash,
// a comma, a semicolon, an ampersand or a bracket; it never starts with a
// YAML block or alias indicator (so `key: |` and an earlier mask are left).
const bare = `[^\s"'\\,;&{}\[\]|>*][^\s"'\\,;&{}\[\]]*`

// Rule is one kind of credential the redactor recognises. Its pattern's
// groups named "v" are the values replaced with Mask (the rest of the
// match is kept, so the report and a reader see which key was redacted);
// groups named "k" are the key, for Skip.
type Rule struct {
	// Name identifies the rule in redaction-report.json.
	Name string
	// Description says what the rule matches (docs/operations.md).
	Description string
	// Pattern finds the credentials.
	Pattern *regexp.Regexp
	// Skip, when set, keeps a match that is not a credential (a
	// Secret's name under secretName, a boolean).
	Skip func(key, value string) bool
}

// Rules returns the redactor's rules in the order they run. Each call
// builds a fresh table: nothing is shared between redactors.
func Rules() []Rule {
	return []Rule{
		{
			Name:        "private-key",
			Description: "PEM private keys: everything between -----BEGIN … PRIVATE KEY----- and its END line (or the end of the file)",
			Pattern:     regexp.MustCompile(`-----BEGIN[ A-Z0-9]*PRIVATE KEY-----(?P<v>[\s\S]*?)(?:-----END[ A-Z0-9]*PRIVATE KEY-----|\z)`),
		},
		{
			Name:        "url-credentials",
			Description: "the password of a URL's user:password@ part",
			Pattern:     regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@"'<>]+:(?P<v>[^/\s@"'<>]+)@`),
		},
		{
			Name:        "bearer-token",
			Description: "bearer tokens: `Bearer xyz`, `Authorization: Bearer xyz`",
			Pattern:     regexp.MustCompile(`(?i)\bbearer[ \t]+(?P<v>[A-Za-z0-9\-._~+/]+=*)`),
		},
		{
			Name:        "authorization-header",
			Description: "the credentials of any other Authorization header (Basic, Token, …)",
			Pattern:     regexp.MustCompile(`(?i)\b(?:proxy-)?authorization\\?["']?[ \t]*[:=][ \t]*\\?["']?(?:(?:basic|bearer|digest|token|negotiate)[ \t]+)?(?P<v>[^\s"'\\,;]+)`),
		},
		{
			Name:        "docker-auth",
			Description: `Docker config "auth": "…" values`,
			Pattern:     regexp.MustCompile(`\\?"auth\\?"[ \t]*:[ \t]*\\?"(?P<v>[^"\\]+)\\?"`),
		},
		{
			Name:        "env-pair",
			Description: "a container env entry whose name looks sensitive: `name: API_TOKEN` followed by `value: …` (YAML) or {\"name\":\"API_TOKEN\",\"value\":\"…\"} (JSON); names and booleans are kept as for key-value",
			Pattern: regexp.MustCompile(`(?i)name:[ \t]*["']?(?P<k>` + key + `)["']?[ \t]*\r?\n[ \t]+value:[ \t]*(?:"(?P<v>[^"\r\n]*)"|'(?P<v>[^'\r\n]*)'|(?P<v>[^\s"'][^\r\n]*))` +
				`|\\?"name\\?"[ \t]*:[ \t]*\\?"(?P<k>` + key + `)\\?"[ \t]*,[ \t]*\\?"value\\?"[ \t]*:[ \t]*\\?"(?P<v>[^"\\]*)\\?"`),
			Skip: skipKeyValue,
		},
		{
			Name:        "key-value",
			Description: "the value of a key named like password, passwd, passphrase, secret, token, api_key, apikey, access_key or private_key, in `key: value`, `key=value` and `\"key\": \"value\"` forms (YAML, JSON, env vars, flags, query strings); keys that only name or point at a secret (secretName, tokenFile, …) and booleans are kept",
			Pattern:     regexp.MustCompile(`(?i)(?P<k>` + key + `)(?:\\?["'])?[ \t]*[:=][ \t]*(?:\\?"(?P<v>[^"\\\r\n]*)\\?"|'(?P<v>[^'\r\n]*)'|(?P<v>` + bare + `))`),
			Skip:        skipKeyValue,
		},
		{
			Name:        "jwt",
			Description: "JWT-like strings (eyJ… with two or three dot-separated parts) and long base64-encoded JSON (eyJ…)",
			Pattern:     regexp.MustCompile(`\b(?P<v>eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]{4,}){1,2}|eyJ[A-Za-z0-9+/_-]{30,}={0,2})`),
		},
		{
			Name:        "aws-access-key-id",
			Description: "AWS access key IDs (AKIA… / ASIA…)",
			Pattern:     regexp.MustCompile(`\b(?P<v>(?:AKIA|ASIA)[0-9A-Z]{16})\b`),
		},
	}
}

// skipKeyValue keeps keys that name, point at or describe a credential
// rather than hold one, and values that are not secrets (booleans, null).
func skipKeyValue(k, v string) bool {
	kept := [...]string{
		"name", "names", "ref", "refs", "namespace", "path", "paths", "file", "filename", "dir",
		"seconds", "ttl", "expiration", "audience", "audiences", "type", "kind", "count", "enabled",
		"mount", "mode", "source", "provider", "format", "length", "size", "version", "key_id", "keyid",
	}
	k = strings.ToLower(k)
	for _, s := range kept {
		if strings.HasSuffix(k, s) && !strings.HasSuffix(k, "apikey") {
			return true
		}
	}
	switch strings.ToLower(v) {
	case "true", "false", "null", "~", "none", "nil":
		return true
	}
	return false
}

// Redactor replaces values that look like credentials with Mask.
type Redactor struct {
	rules []Rule
}

// NewRedactor returns a redactor with Rules().
func NewRedactor() *Redactor { return &Redactor{rules: Rules()} }

// RuleNames lists the redactor's rules in order.
func (r *Redactor) RuleNames() []string {
	names := make([]string, len(r.rules))
	for i, rule := range r.rules {
		names[i] = rule.Name
	}
	return names
}

// Redact returns data with every credential replaced and how many values
// each rule replaced (rules that replaced nothing are absent).
func (r *Redactor) Redact(data []byte) ([]byte, map[string]int) {
	counts := map[string]int{}
	for _, rule := range r.rules {
		var n int
		data, n = apply(rule, data)
		if n > 0 {
			counts[rule.Name] += n
		}
	}
	return data, counts
}

// apply replaces the values of rule's matches in data.
func apply(rule Rule, data []byte) ([]byte, int) {
	matches := rule.Pattern.FindAllSubmatchIndex(data, -1)
	if len(matches) == 0 {
		return data, 0
	}
	names := rule.Pattern.SubexpNames()
	var out bytes.Buffer
	out.Grow(len(data))
	last, n := 0, 0
	for _, m := range matches {
		k := ""
		for g, name := range names {
			if name == "k" && m[2*g] >= 0 {
				k = string(data[m[2*g]:m[2*g+1]])
			}
		}
		for g, name := range names {
			s, e := m[2*g], m[2*g+1]
			if name != "v" || s < 0 || s < last {
				continue
			}
			v := string(data[s:e])
			if v == "" || strings.HasPrefix(v, Mask) || (rule.Skip != nil && rule.Skip(k, v)) {
				continue
			}
			out.Write(data[last:s])
			out.WriteString(mask(data, s, e))
			last = e
			n++
		}
	}
	out.Write(data[last:])
	return out.Bytes(), n
}

// mask is Mask, quoted when it replaces a whole bare value after a colon
// (YAML `key: value`, JSON `"key": 123`): a bare *** would be a YAML
// alias, so the file stays parseable.
func mask(data []byte, s, e int) string {
	i := s - 1
	for i >= 0 && (data[i] == ' ' || data[i] == '\t') {
		i--
	}
	if i < 0 || data[i] != ':' {
		return Mask
	}
	if e < len(data) && !slices.Contains([]byte{'\n', '\r', ',', '}', ']', ' ', '\t'}, data[e]) {
		return Mask
	}
	return `"` + Mask + `"`
}
