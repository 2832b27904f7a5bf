package appspec

import (
	"errors"
	"io/fs"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const head = "version: 0.0\nos: linux\n"

// rejectCases has one case per rule: each input has exactly one problem.
var rejectCases = []struct {
	name  string
	in    string
	line  int
	field string
	msg   string // substring of the message
}{
	{"empty file", "", 1, "", "file is empty"},
	{"only comments", "# nothing here\n\n", 1, "", "file is empty"},
	{"null document", "~\n", 1, "", "file is empty"},
	{"not a mapping", "- version: 0.0\n", 1, "", "must be a mapping"},
	{"invalid yaml", "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n  - location: a.sh\n   timeout: 3\n", 4, "", "invalid YAML: did not find expected key"},
	{"unclosed list", "version: 0.0\nos: linux\nhooks: [a\n", 3, "", "invalid YAML: did not find expected ',' or ']'"},
	{"tab indentation", "version: 0.0\nos: linux\nhooks:\n\t- a\n", 4, "", "invalid YAML: found character that cannot start any token"},
	{"unterminated quote", "version: 0.0\nos: linux\nos: \"linux\n", 3, "", "invalid YAML: found unexpected end of stream"},
	{"unknown alias", "version: 0.0\nos: linux\nx: *nope\n", 0, "", "invalid YAML: unknown anchor 'nope' referenced"},
	{"duplicate key", head + "files:\nos: linux\n", 4, "os", "duplicate key (first defined at line 2)"},
	{"missing version", "os: linux\n", 1, "version", "missing"},
	{"null version", "version:\nos: linux\n", 1, "version", "missing"},
	{"wrong version", "version: 1.0\nos: linux\n", 1, "version", "must be 0.0"},
	{"quoted version", "version: \"0.0\"\nos: linux\n", 1, "version", "quoted string"},
	{"missing os", "version: 0.0\n", 1, "os", "missing"},
	{"windows", "version: 0.0\nos: windows\n", 2, "os", `"windows" is not supported, want linux`},
	{"os in capitals", "version: 0.0\nos: Linux\n", 2, "os", "lower case"},
	{"bad file_exists_behavior", head + "file_exists_behavior: REPLACE\n", 3, "file_exists_behavior", "DISALLOW, OVERWRITE or RETAIN"},
	{"lower-case file_exists_behavior", head + "file_exists_behavior: overwrite\n", 3, "file_exists_behavior", "upper case"},
	{"files not a list", head + "files:\n  source: /\n", 4, "files", "must be a list"},
	{"files entry a string", head + "files:\n  - /srv\n", 4, "files[0]", "must be a mapping"},
	{"files without source", head + "files:\n  - destination: /srv\n", 4, "files[0].source", "missing"},
	{"files without destination", head + "files:\n  - source: app\n", 4, "files[0].destination", "missing"},
	{"files empty source", head + "files:\n  - source: ''\n    destination: /srv\n", 4, "files[0].source", "is empty"},
	{"files source leaves bundle", head + "files:\n  - source: ../etc\n    destination: /srv\n", 4, "files[0].source", "outside the bundle"},
	{"files destination home", head + "files:\n  - source: /\n    destination: ~/app\n", 5, "files[0].destination", "starts with ~"},
	{"permissions without object", head + "permissions:\n  - owner: bob\n", 4, "permissions[0].object", "missing"},
	{"permissions empty object", head + "permissions:\n  - object: '  '\n", 4, "permissions[0].object", "is empty"},
	{"mode too long", head + "permissions:\n  - object: /srv\n    mode: 12345\n", 5, "permissions[0].mode", "one to four octal digits"},
	{"mode with 8", head + "permissions:\n  - object: /srv\n    mode: 648\n", 5, "permissions[0].mode", "invalid character '8'"},
	{"mode letters", head + "permissions:\n  - object: /srv\n    mode: rwx\n", 5, "permissions[0].mode", "invalid character 'r'"},
	{"mode 04755", head + "permissions:\n  - object: /srv\n    mode: 04755\n", 5, "permissions[0].mode", `"04755" has 5 characters`},
	{"mode seven digits", head + "permissions:\n  - object: /srv\n    mode: 0100644\n", 5, "permissions[0].mode", "has 7 characters"},
	{"mode empty", head + "permissions:\n  - object: /srv\n    mode: ''\n", 5, "permissions[0].mode", "is empty"},
	{"mode a list", head + "permissions:\n  - object: /srv\n    mode: [6, 4, 4]\n", 5, "permissions[0].mode", "got a list"},
	{"acl too many parts", head + "permissions:\n  - object: /srv\n    acls:\n      - d:u:bob:7:rwx\n", 6, "permissions[0].acls[0]", "has 5 parts"},
	{"acl unknown type", head + "permissions:\n  - object: /srv\n    acls:\n      - x:bob:rw\n", 6, "permissions[0].acls[0]", `"x" is not a type`},
	{"acl default twice", head + "permissions:\n  - object: /srv\n    acls:\n      - d:d:bob:rw\n", 6, "permissions[0].acls[0]", "default is given twice"},
	{"acl base user", head + "permissions:\n  - object: /srv\n    acls:\n      - u::rw\n", 6, "permissions[0].acls[0]", "set it with mode"},
	{"acl base group", head + "permissions:\n  - object: /srv\n    acls:\n      - g::r\n", 6, "permissions[0].acls[0]", "set it with mode"},
	{"acl base other", head + "permissions:\n  - object: /srv\n    acls:\n      - o::r\n", 6, "permissions[0].acls[0]", "set it with mode"},
	{"acl base short", head + "permissions:\n  - object: /srv\n    acls:\n      - ':rw'\n", 6, "permissions[0].acls[0]", "set it with mode"},
	{"acl mask with name", head + "permissions:\n  - object: /srv\n    acls:\n      - m:bob:rw\n", 6, "permissions[0].acls[0]", "mask entries take no name"},
	{"acl bad permission", head + "permissions:\n  - object: /srv\n    acls:\n      - u:bob:rwz\n", 6, "permissions[0].acls[0]", "invalid permission character 'z'"},
	{"acls not a list", head + "permissions:\n  - object: /srv\n    acls: u:bob:rw\n", 5, "permissions[0].acls", "must be a list"},
	{"bad type", head + "permissions:\n  - object: /srv\n    type:\n      - link\n", 6, "permissions[0].type[0]", `"file" or "directory"`},
	{"type not a list", head + "permissions:\n  - object: /srv\n    type: file\n", 5, "permissions[0].type", "write [file]"},
	{"type empty", head + "permissions:\n  - object: /srv\n    type: []\n", 5, "permissions[0].type", "apply to nothing"},
	{"except not a list", head + "permissions:\n  - object: /srv\n    except: a.txt\n", 5, "permissions[0].except", "must be a list"},
	{"context without type", head + "permissions:\n  - object: /srv\n    context:\n      name: user_u\n", 6, "permissions[0].context.type", "missing"},
	{"context not a mapping", head + "permissions:\n  - object: /srv\n    context: httpd_t\n", 5, "permissions[0].context", "must be a mapping"},
	{"range high below low", head + "permissions:\n  - object: /srv\n    context:\n      type: t\n      range: s3-s2:c0\n", 7, "permissions[0].context.range", "below the low"},
	{"range category too big", head + "permissions:\n  - object: /srv\n    context:\n      type: t\n      range: s0:c1024\n", 7, "permissions[0].context.range", "c0 to c1023"},
	{"range duplicate category", head + "permissions:\n  - object: /srv\n    context:\n      type: t\n      range: s0:c0.c2,c1\n", 7, "permissions[0].context.range", "given twice"},
	{"user and name differ", head + "permissions:\n  - object: /srv\n    context:\n      type: t\n      name: a_u\n      user: b_u\n", 8, "permissions[0].context.user", "differs"},
	{"hooks a list", head + "hooks:\n  - AfterInstall: a.sh\n", 4, "hooks", "Lambda and ECS"},
	{"unknown event", head + "hooks:\n  AfterInstal:\n    - location: a.sh\n", 4, "hooks.AfterInstal", `did you mean "AfterInstall"?`},
	{"legacy event", head + "hooks:\n  BeforeELBAdd:\n    - location: a.sh\n", 4, "hooks.BeforeELBAdd", "called BeforeAllowTraffic now"},
	{"long value clipped", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      runas: \"" + strings.Repeat("x y", 300) + "\"\n", 6, "hooks.AfterInstall[0].runas", "... (427 bytes more)"},
	{"unknown event far off", head + "hooks:\n  Deploy:\n    - location: a.sh\n", 4, "hooks.Deploy", "scriptable events are"},
	{"scripts on DownloadBundle", head + "hooks:\n  DownloadBundle:\n    - location: a.sh\n", 4, "hooks.DownloadBundle", "cannot run scripts"},
	{"scripts on Install", head + "hooks:\n  Install:\n    - location: a.sh\n", 4, "hooks.Install", "cannot run scripts"},
	{"scripts on BlockTraffic", head + "hooks:\n  BlockTraffic:\n    - location: a.sh\n", 4, "hooks.BlockTraffic", "cannot run scripts"},
	{"event without dash", head + "hooks:\n  AfterInstall:\n    location: a.sh\n", 5, "hooks.AfterInstall", "start each script with a dash"},
	{"event a string", head + "hooks:\n  AfterInstall: a.sh\n", 4, "hooks.AfterInstall", `write "- location: a.sh"`},
	{"script a plain string", head + "hooks:\n  AfterInstall:\n    - scripts/a.sh\n", 5, "hooks.AfterInstall[0]", "plain string"},
	{"hook without location", head + "hooks:\n  AfterInstall:\n    - timeout: 30\n", 5, "hooks.AfterInstall[0].location", "missing"},
	{"hook null location", head + "hooks:\n  AfterInstall:\n    - location:\n      timeout: 30\n", 5, "hooks.AfterInstall[0].location", "missing"},
	{"hook empty location", head + "hooks:\n  AfterInstall:\n    - location: ' '\n", 5, "hooks.AfterInstall[0].location", "is empty"},
	{"hook location leaves bundle", head + "hooks:\n  AfterInstall:\n    - location: scripts/../../a.sh\n", 5, "hooks.AfterInstall[0].location", "outside the bundle"},
	{"hook location is the root", head + "hooks:\n  AfterInstall:\n    - location: /\n", 5, "hooks.AfterInstall[0].location", "bundle root"},
	{"timeout not a number", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: abc\n", 6, "hooks.AfterInstall[0].timeout", `must be a positive number of seconds, got "abc"`},
	{"timeout with unit", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: 5m\n", 6, "hooks.AfterInstall[0].timeout", `got "5m"`},
	{"timeout fraction", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: 1.5\n", 6, "hooks.AfterInstall[0].timeout", "must be a whole number of seconds, got the number 1.5"},
	{"timeout boolean", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: true\n", 6, "hooks.AfterInstall[0].timeout", "got the boolean true"},
	{"timeout zero", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: 0\n", 6, "hooks.AfterInstall[0].timeout", "positive number of seconds, got 0"},
	{"timeout negative", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: -30\n", 6, "hooks.AfterInstall[0].timeout", "got -30"},
	{"timeout over an hour", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: 3601\n", 6, "hooks.AfterInstall[0].timeout", "at most 3600"},
	{"timeouts sum past an hour", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: 1800\n    - location: b.sh\n      timeout: 1801\n", 4, "hooks.AfterInstall", "add up to 3601 seconds"},
	{"runas with a blank", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      runas: bob smith\n", 6, "hooks.AfterInstall[0].runas", "not a valid user name"},
	{"sudo not boolean", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      sudo: maybe\n", 6, "hooks.AfterInstall[0].sudo", "true or false"},
}

func TestParseRejects(t *testing.T) {
	for _, tc := range rejectCases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := Parse("bundle/appspec.yml", []byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted %q: %+v", tc.in, spec)
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error is %T, want *Error: %v", err, err)
			}
			if len(perr.Problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(perr.Problems), err)
			}
			p := perr.Problems[0]
			if p.File != "bundle/appspec.yml" || p.Line != tc.line || p.Field != tc.field || !strings.Contains(p.Msg, tc.msg) {
				t.Errorf("got %s\nwant bundle/appspec.yml:%d: %s: ...%s...", p, tc.line, tc.field, tc.msg)
			}
			prefix := "bundle/appspec.yml: "
			if tc.line > 0 {
				prefix = "bundle/appspec.yml:" + strconv.Itoa(tc.line) + ": "
			}
			if tc.field != "" {
				prefix += tc.field + ": "
			}
			if !strings.HasPrefix(p.String(), prefix) || err.Error() != p.String() {
				t.Errorf("String() = %q, want prefix %q; Error() = %q", p.String(), prefix, err.Error())
			}
		})
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	in := `version: 0.0
os: windows
hooks:
  AfterInstall:
    - location: scripts/a.sh
      timeout: soon
permissions:
  - object: /srv
    mode: 999
`
	_, err := Parse("appspec.yml", []byte(in))
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("want *Error, got %v", err)
	}
	want := []string{
		`appspec.yml:2: os: "windows" is not supported, want linux`,
		`appspec.yml:6: hooks.AfterInstall[0].timeout: must be a positive number of seconds, got "soon"`,
		`appspec.yml:9: permissions[0].mode: "999" has the invalid character '9'; a mode is one to four octal digits such as 644 or 4755`,
	}
	var got []string
	for _, p := range perr.Problems {
		got = append(got, p.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestParseMinimal(t *testing.T) {
	for _, in := range []string{head, "version: 0\nos: linux\n", "version: 0.00\nos: 'linux'\n", "{version: 0.0, os: linux}", "---\nversion: 0.0\nos: linux\n"} {
		spec, err := Parse("appspec.yml", []byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		want := &AppSpec{Path: "appspec.yml", Version: "0.0", OS: "linux", FileExistsBehavior: Disallow, Hooks: map[Event][]Hook{}}
		spec.lines = nil
		if !reflect.DeepEqual(spec, want) {
			t.Errorf("%q: got %+v", in, spec)
		}
	}
}

func TestParseFull(t *testing.T) {
	in := `version: 0.0
os: linux
files:
  - source: /
    destination: /var/www/app/
  - source: ./config/app.conf
    destination: /etc/app
file_exists_behavior: OVERWRITE
permissions:
  - object: /var/www/app
    pattern: "*.sh"
    except: [skip.sh]
    owner: www-data
    group: www-data
    mode: 0755
    acls:
      - u:deploy:rwx
      - d:g:ops:5
      - m::rw
    context:
      name: system_u
      type: httpd_sys_content_t
      range: s0-s3:c7,c0.c5
    type:
      - file
  - object: /etc/app/app.conf
    mode: 640
    type: [file, directory]
hooks:
  ApplicationStop:
    - location: scripts/stop.sh
      timeout: 60
      runas: app
  AfterInstall:
    - location: /scripts/configure.sh
      timeout: "300"
    - location: scripts/migrate.sh
      timeout: 1200
      sudo: yes
  ValidateService:
    - location: scripts/check.sh
`
	spec, err := Parse("appspec.yml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	spec.lines = nil
	want := &AppSpec{
		Path: "appspec.yml", Version: "0.0", OS: "linux",
		Files: []File{
			{Source: "", Destination: "/var/www/app", Line: 4},
			{Source: "config/app.conf", Destination: "/etc/app", Line: 6},
		},
		FileExistsBehavior: Overwrite,
		Permissions: []Permission{
			{
				Object: "/var/www/app", Pattern: "*.sh", Except: []string{"skip.sh"},
				Owner: "www-data", Group: "www-data", Mode: 0o755, HasMode: true,
				ACLs:    []string{"user:deploy:rwx", "default:group:ops:r-x", "mask::rw-"},
				Context: &SELinuxContext{User: "system_u", Type: "httpd_sys_content_t", Range: &SELinuxRange{Low: "s0", High: "s3:c0.c5,c7"}},
				Types:   []ObjectType{TypeFile}, Line: 10,
			},
			{Object: "/etc/app/app.conf", Pattern: "**", Mode: 0o640, HasMode: true, Types: []ObjectType{TypeFile, TypeDirectory}, Line: 26},
		},
		Hooks: map[Event][]Hook{
			ApplicationStop: {{Location: "scripts/stop.sh", Timeout: 60 * time.Second, RunAs: "app", Line: 31}},
			AfterInstall: {
				{Location: "scripts/configure.sh", Timeout: 300 * time.Second, Line: 35},
				{Location: "scripts/migrate.sh", Timeout: 1200 * time.Second, Line: 37},
			},
			ValidateService: {{Location: "scripts/check.sh", Timeout: DefaultHookTimeout, Line: 41}},
		},
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("got  %+v\nwant %+v", spec, want)
	}
	if got := spec.Permissions[0].Context.Range.String(); got != "s0-s3:c0.c5,c7" {
		t.Errorf("range = %q", got)
	}
}

func TestParseMultipleScriptsWithoutTimeouts(t *testing.T) {
	// CodeDeploy's own documentation example: two scripts without a
	// timeout in one event. Defaults do not count towards the 3600 s sum.
	in := head + "hooks:\n  BeforeInstall:\n    - location: Scripts/UnzipResourceBundle.sh\n    - location: Scripts/UnzipDataBundle.sh\n    - location: Scripts/Check.sh\n      timeout: 3600\n"
	spec, err := Parse("appspec.yml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	hs := spec.Hooks[BeforeInstall]
	if len(hs) != 3 || hs[0].Location != "Scripts/UnzipResourceBundle.sh" || hs[1].Location != "Scripts/UnzipDataBundle.sh" || hs[2].Timeout != time.Hour {
		t.Errorf("hooks = %+v", hs)
	}
}

func TestParseModes(t *testing.T) {
	cases := []struct {
		in   string
		want fs.FileMode
	}{
		{"644", 0o644},
		{`"644"`, 0o644},
		{"0644", 0o644}, // unquoted leading zero kept as written (agent 2), not octal 420 (agent 1)
		{"'0755'", 0o755},
		{"0755", 0o755},
		{"4755", fs.ModeSetuid | 0o755},
		{"2750", fs.ModeSetgid | 0o750},
		{"1777", fs.ModeSticky | 0o777},
		{"7777", fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o777},
		{"7", 0o007},
		{"44", 0o044},
		{"0", 0},
		{"0000", 0},
	}
	for _, tc := range cases {
		spec, err := Parse("appspec.yml", []byte(head+"permissions:\n  - object: /srv\n    mode: "+tc.in+"\n"))
		if err != nil {
			t.Errorf("mode %s: %v", tc.in, err)
			continue
		}
		if p := spec.Permissions[0]; !p.HasMode || p.Mode != tc.want {
			t.Errorf("mode %s = %v (has %v), want %v", tc.in, p.Mode, p.HasMode, tc.want)
		}
	}
}

func TestParseEmptyACLs(t *testing.T) {
	spec, err := Parse("appspec.yml", []byte(head+"permissions:\n  - object: /srv\n    acls: []\n  - object: /srv/b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := spec.Permissions[0].ACLs; a == nil || len(a) != 0 {
		t.Errorf("acls: [] gave %#v, want an empty non-nil list", a)
	}
	if a := spec.Permissions[1].ACLs; a != nil {
		t.Errorf("no acls gave %#v, want nil", a)
	}
}

func TestParseACLs(t *testing.T) {
	cases := map[string]string{
		"u:bob:rw":          "user:bob:rw-",
		"user:bob:7":        "user:bob:rwx",
		"bob:0":             "user:bob:---",
		"g:dev:r-x":         "group:dev:r-x",
		"group:dev:5":       "group:dev:r-x",
		"m::rw":             "mask::rw-",
		"mask::7":           "mask::rwx",
		"m:7":               "mask::rwx",
		"mask:":             "mask::---",
		"d:bob:rwx":         "default:user:bob:rwx",
		"d::rw":             "default:user::rw-",
		"default::rw":       "default:user::rw-",
		"d:u:bob:rwx":       "default:user:bob:rwx",
		"default:g:dev:rw":  "default:group:dev:rw-",
		"d:g::4":            "default:group::r--",
		"d:o:3":             "default:other::-wx",
		"d:m:7":             "default:mask::rwx",
		"u:mask:7":          "user:mask:rwx",
		"u:other:7":         "user:other:rwx",
		"u:henry:rrwwxx--":  "user:henry:rwx",
		"default:other::rw": "default:other::rw-",
	}
	for in, want := range cases {
		got, msg := parseACE(in)
		if msg != "" || got != want {
			t.Errorf("parseACE(%q) = %q, %q; want %q", in, got, msg, want)
			continue
		}
		if again, msg := parseACE(got); again != got || msg != "" {
			t.Errorf("canonical %q does not read back: %q %q", got, again, msg)
		}
	}
}

func TestParseRanges(t *testing.T) {
	cases := []struct{ in, low, high, str string }{
		{"s0", "s0", "s0", "s0"},
		{"s5", "s5", "s5", "s5"},
		{"s3-s7:c5,c8.c10,c17", "s3", "s7:c5,c8.c10,c17", "s3-s7:c5,c8.c10,c17"},
		{"s0:c0.c1,c15,c7.c9", "s0:c0.c1,c7.c9,c15", "s0:c0.c1,c7.c9,c15", "s0:c0.c1,c7.c9,c15"},
		{"s0-s0:c1", "s0:c1", "s0:c1", "s0:c1"},
		{"s0:c1023", "s0:c1023", "s0:c1023", "s0:c1023"},
		{"s0:c1,", "s0:c1", "s0:c1", "s0:c1"},
	}
	for _, tc := range cases {
		r, msg := parseRange(tc.in)
		if msg != "" || r.Low != tc.low || r.High != tc.high || r.String() != tc.str {
			t.Errorf("parseRange(%q) = %+v %q, want %s %s", tc.in, r, msg, tc.low, tc.high)
		}
	}
	for _, bad := range []string{"", "s", "sd3", "d3", "s0-s-1", "s3-:c0", ":c0", "s0:", "s0:c", "s0:c-1", "s0:cd3", "s0:c2.c1", "s0:c2.", "s0:,c1", "s0:c0.c2,c1", "s0:c1024"} {
		if r, msg := parseRange(bad); msg == "" {
			t.Errorf("parseRange(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestParseWarnings(t *testing.T) {
	in := `version: 0.0
os: linux
Hooks: {}
files:
  - source: app
    destination: srv/app
    file_exists_behavior: OVERWRITE
permissions:
  - object: srv/app
    context:
      type: t
      role: object_r
hooks:
  ApplicationStop:
  AfterInstall:
    - location: a.sh
      runAs: bob
      Timeout: 30
  BeforeDeploy:
  Install: ~
---
version: 1
`
	spec, err := Parse("appspec.yml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range spec.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`appspec.yml:3: Hooks: unknown key, ignored (as CodeDeploy does); did you mean "hooks"?`,
		`appspec.yml:6: files[0].destination: "srv/app" is relative; it is read from / (as CodeDeploy's agent does), write "/srv/app"`,
		`appspec.yml:7: files[0].file_exists_behavior: ignored here (as CodeDeploy does); file_exists_behavior belongs at the top level, next to files`,
		`appspec.yml:9: permissions[0].object: "srv/app" is relative; it is read from / (as CodeDeploy's agent does), write "/srv/app"`,
		`appspec.yml:12: permissions[0].context.role: ignored: CodeDeploy does not support SELinux roles`,
		`appspec.yml:14: hooks.ApplicationStop: lists no scripts`,
		`appspec.yml:17: hooks.AfterInstall[0].runAs: unknown key, ignored (as CodeDeploy does); did you mean "runas"?`,
		`appspec.yml:18: hooks.AfterInstall[0].Timeout: unknown key, ignored (as CodeDeploy does); did you mean "timeout"?`,
		`appspec.yml:19: hooks.BeforeDeploy: lists no scripts and is ignored (it is not a scriptable lifecycle event; CodeDeploy ignores it too)`,
		`appspec.yml:20: hooks.Install: lists no scripts and is ignored (it is not a scriptable lifecycle event; CodeDeploy ignores it too)`,
		`appspec.yml:21: only the first YAML document is read; everything after the first "---" separator is ignored`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if spec.Files[0].Destination != "/srv/app" || spec.Permissions[0].Object != "/srv/app" || spec.Hooks[AfterInstall][0].RunAs != "" {
		t.Errorf("spec = %+v", spec)
	}
}

func TestParseAliasesAndMerge(t *testing.T) {
	in := `version: 0.0
os: linux
x-script: &script
  timeout: 120
  runas: app
hooks:
  AfterInstall:
    - <<: *script
      location: a.sh
    - <<: *script
      location: b.sh
      timeout: 30
`
	spec, err := Parse("appspec.yml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	hs := spec.Hooks[AfterInstall]
	if len(hs) != 2 || hs[0].Timeout != 120*time.Second || hs[0].RunAs != "app" || hs[1].Timeout != 30*time.Second {
		t.Errorf("hooks = %+v", hs)
	}
}

func TestParseAliasBomb(t *testing.T) {
	// 20 KB that would make the checker visit a million nodes.
	var b strings.Builder
	b.WriteString(head + "x: &acls [" + strings.Repeat("u:a:r, ", 999) + "u:a:r]\npermissions:\n")
	for range 1000 {
		b.WriteString("  - {object: /srv, acls: *acls}\n")
	}
	_, err := Parse("appspec.yml", []byte(b.String()))
	var perr *Error
	if !errors.As(err, &perr) || len(perr.Problems) != 1 || !strings.Contains(err.Error(), "too complex") {
		t.Fatalf("want one too complex problem, got %v", err)
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse("appspec.yml", []byte(head+"#"+strings.Repeat("x", MaxSize)))
	if err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("want a size error, got %v", err)
	}
}
