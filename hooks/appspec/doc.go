// Package appspec parses and validates AWS CodeDeploy appspec.yml files for
// the EC2/On-Premises compute platform on Linux.
//
// The rules follow CodeDeploy's agent (the Ruby agent 1.x and its Rust
// successor 2.x) and its user guide. Parse reports every problem it finds,
// each as FILE:LINE: FIELD: MESSAGE, not just the first; Load adds the
// checks that need the unpacked bundle. Findings that would not stop
// CodeDeploy either are warnings (AppSpec.Warnings), to be logged.
//
// # What is checked
//
//   - The file: appspec.yml at the bundle root, else appspec.yaml; at most
//     1 MiB; one YAML mapping. Only the first YAML document is read.
//   - version must be the number 0.0 (0 and 0.00 are the same number).
//   - os must be "linux": drover deploys to Linux only.
//   - file_exists_behavior (top level) is DISALLOW (default), OVERWRITE or
//     RETAIN, in upper case.
//   - files: a list of source/destination pairs, both required and
//     non-empty. source is relative to the bundle root ("/" is the whole
//     bundle) and may not leave it; Load checks that it exists.
//     destination is a path on the instance.
//   - permissions: object is required. pattern, except (a list), owner,
//     group, mode, acls (a list), context and type (a list of "file" and
//     "directory") are optional. When object is a file copied from the
//     bundle (Load works this out from files), pattern must be "**" or
//     absent, except must be absent and acls may hold no default entries:
//     CodeDeploy fails such deployments at Install.
//   - mode: one to four octal digits (see the footguns below).
//   - acls: entries [d[efault]:][u[ser]|g[roup]|m[ask]|o[ther]:][name]:perms
//     with perms made of r, w, x, - or one octal digit. A mask needs no
//     name and takes none, as does other. The base entries (u::, g::,
//     o::, :perms) are rejected: mode sets them. Default base entries
//     (d:u::rwx) are fine. Entries are stored in canonical setfacl form
//     ("default:user:bob:rw-").
//   - context: type is required; name (what CodeDeploy's agent reads) or
//     user (what its user guide says) is the SELinux user; range has the
//     form s#[-s#][:c#[.c#](,c#[.c#])*] with categories c0 to c1023, each
//     at most once. A role is ignored with a warning, as CodeDeploy
//     ignores it.
//   - hooks: a mapping from lifecycle event to a list of scripts, each a
//     mapping with location (required, relative to the bundle root; a
//     leading "/" means the bundle root; it may not leave the bundle),
//     timeout and runas. The undocumented sudo key of agent 1 is accepted
//     (true or false) and changes nothing: drover runs scripts as root
//     unless runas says otherwise. Unknown events are rejected (CodeDeploy
//     rejects them when its service lists the events), as are scripts on
//     DownloadBundle, Install, BlockTraffic and AllowTraffic, which the
//     agent runs itself. An event with no scripts ("ApplicationStop:" and
//     nothing under it) is a warning.
//   - timeout: a whole number of seconds from 1 to 3600. The explicit
//     timeouts of one event may not add up to more than 3600. Scripts
//     without a timeout get 3600 each and do not count towards the sum,
//     the rule of AWS's own appspec validator: its documentation example
//     has two such scripts in one event.
//   - Load: every hook location is a regular file in the bundle (or a
//     symlink to one that stays inside), and every files source exists.
//
// # Unknown keys
//
// CodeDeploy ignores keys it does not know, at every level, so a bundle
// with "runAs:" or "Timeout:" deploys there with the key silently
// dropped. drover deploys it too, but warns, naming the key it most likely
// meant. Duplicate keys are errors: CodeDeploy's YAML reader keeps the
// last silently, which has hidden whole lists of scripts.
//
// # YAML footguns
//
// CodeDeploy agent 1 reads appspec.yml with Ruby's YAML 1.1 reader; agent
// 2 and drover use YAML 1.2 readers. Where that matters drover follows
// what the author evidently meant and what agent 2 does:
//
//   - mode: 644 and mode: "644" are the same mode, rw-r--r--. Unquoted
//     leading zeros are kept as written: mode: 0644 is 0644 and mode: 0755
//     is 0755, as in agent 2. (Agent 1's YAML 1.1 reader took 0644 as the
//     octal number 420 and applied r---w----, and rejected 0755, read as
//     493, for its digit 9.) Modes have one to four octal digits, padded
//     with zeros to three (mode: 7 is 007; mode: 4755 is setuid plus
//     rwxr-xr-x); five or more characters, as in 04755, 0100644, 00644 or
//     644.0, are rejected (agent 1 read 04755 as the number 2541 and set
//     setgid r---w---x), as is an empty mode.
//   - version: 0.0 must stay unquoted. CodeDeploy compares it with the
//     number 0.0, so version: "0.0" is a string and both agents reject it.
//   - timeout: 300 and timeout: "300" are both 300 seconds. A leading
//     zero does not make a number octal (0300 is 300). Anything else is
//     rejected rather than guessed at: "5m" (agent 1 would have run it
//     for 5 seconds), 1.5, 0x10, -1, 0, yes.
//   - sudo: yes, on, true (and no, off, false) are booleans, as YAML 1.1
//     has them.
//   - Paths and names are taken as written: owner: 1000 is the user named
//     "1000", location: 0644 is the file "0644".
//   - Aliases (*name) and merge keys (<<) work; every use of an alias
//     counts towards a bound on the work of one Parse.
//
// # Paths
//
// Hook locations and files sources are cleaned and made relative to the
// bundle root ("./scripts/a.sh" and "/scripts/a.sh" are "scripts/a.sh").
// files destinations and permissions objects are cleaned absolute paths.
// A relative destination or object is read from "/", which is what
// CodeDeploy's agent, whose working directory is "/", does with it; drover
// warns. One starting with "~" is rejected, since its meaning depends on
// the agent's home directory.
package appspec
