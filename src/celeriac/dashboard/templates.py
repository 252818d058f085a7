"""The pages' Jinja2 templates (autoescaped), kept in code so no package-data or front-end build is needed.

The only script is a few lines of plain JS: an EventSource on ``/stream`` that, on each change, re-fetches the
page and swaps its ``#live`` element, so lists update without a reload.
"""

from __future__ import annotations

from jinja2 import DictLoader, Environment, select_autoescape

BASE = """<!doctype html><html><head><meta charset="utf-8"><title>{{ title }} · celeriac</title>
<meta name="csrf" value="{{ csrf }}">
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#222}nav{background:#24323d;padding:.5em 1em}
nav a{color:#fff;margin-right:1.2em;text-decoration:none}nav .who{float:right;color:#9bd}
main{padding:1em}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em;
text-align:left;font-size:.9em}th a{color:#222}.SUCCESS{color:#080}.FAILURE{color:#c00}.RETRY{color:#b60}
.online{color:#080}.lost{color:#b60}.offline{color:#999}pre{background:#f6f6f6;padding:.5em;overflow:auto}
form.inline{display:inline}.flash{background:#ffd;padding:.5em;border:1px solid #cc8}
</style></head><body>
<nav><a href="/">Workers</a><a href="/tasks">Tasks</a><a href="/tasks?state=FAILURE">Failures</a>
<a href="/queues">Queues</a><a href="/beat">Beat</a><a href="/control">Control</a><a href="/audit">Audit</a>
<span class="who">{{ user }} ({{ role }})</span></nav><main>
{% if flash %}<p class="flash">{{ flash }}</p>{% endif %}
{% block body %}{% endblock %}</main>
<script>
(function () {
  if (!window.EventSource) return;
  var source = new EventSource("/stream");
  source.onmessage = function () {
    var live = document.getElementById("live");
    if (!live) return;
    fetch(location.href, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (t) {
      var fresh = new DOMParser().parseFromString(t, "text/html").getElementById("live");
      if (!fresh) return;
      live.replaceWith(fresh);
      document.body.dataset.updates = +(document.body.dataset.updates || 0) + 1;
    });
  };
})();
</script></body></html>"""

WORKERS = """{% extends "base" %}{% block body %}<h1>Workers</h1><div id="live"><table>
<tr><th>worker</th><th>status</th><th>software</th><th>pool</th><th>concurrency</th><th>active</th>
<th>reserved</th><th>scheduled</th><th>processed</th><th>load</th><th>max RSS (KiB)</th><th>queues</th>
<th>last heartbeat</th></tr>
{% for w in workers %}<tr><td><a href="/workers/{{ w.hostname }}">{{ w.hostname }}</a></td>
<td class="{{ w.status }}">{{ w.status }}</td><td>{{ w.sw_ident or "" }} {{ w.sw_ver or "" }}</td>
<td>{{ w.pool }}</td><td>{{ w.concurrency }}</td>
<td>{{ w.active if w.active is not none else "" }}</td><td>{{ w.reserved }}</td><td>{{ w.scheduled }}</td>
<td>{{ w.processed if w.processed is not none else "" }}</td>
<td>{{ w.load }}</td><td>{{ w.maxrss }}</td><td>{{ w.queues }}</td><td>{{ w.age }}</td></tr>{% else %}
<tr><td colspan="13">no worker seen yet</td></tr>{% endfor %}
</table></div>{% endblock %}"""

WORKER = """{% extends "base" %}{% block body %}<h1>{{ hostname }}</h1>
{% for title, reply in sections %}<h2>{{ title }}</h2><pre>{{ reply }}</pre>{% endfor %}{% endblock %}"""

TASKS = """{% extends "base" %}{% block body %}<h1>Tasks</h1>
<form method="get" action="/tasks">
<select name="state"><option value="">any state</option>{% for s in states %}
<option {% if s == f.state %}selected{% endif %}>{{ s }}</option>{% endfor %}</select>
<input name="name" placeholder="task name" value="{{ f.name }}"><input name="worker" placeholder="worker"
value="{{ f.worker }}"><input name="queue" placeholder="queue" value="{{ f.queue }}">
<input name="uuid" placeholder="id" value="{{ f.uuid }}"><input name="text" placeholder="args/kwargs text"
value="{{ f.text }}"><input name="since" placeholder="since (unix s)" value="{{ f.since or '' }}" size="10">
<input name="until" placeholder="until (unix s)" value="{{ f.until or '' }}" size="10"><button>filter</button></form>
{% if can_operate and f.state == "FAILURE" %}<form method="post" action="/tasks/bulk-retry">
<input type="hidden" name="csrf" value="{{ csrf }}">{% for k, v in query %}<input type="hidden" name="{{ k }}"
value="{{ v }}">{% endfor %}<button>retry all {{ total }} matching</button></form>{% endif %}
<div id="live"><p>{{ total }} tasks, page {{ page }} of {{ pages }}</p><table><tr>
{% for col in ["uuid", "name", "state", "hostname", "queue", "sent", "started", "runtime", "updated"] %}
<th><a href="?{{ sort_link(col) }}">{{ col }}</a></th>{% endfor %}</tr>
{% for t in tasks %}<tr><td><a href="/tasks/{{ t.uuid }}">{{ t.uuid }}</a></td><td>{{ t.name or "" }}</td>
<td class="{{ t.state }}">{{ t.state }}</td><td>{{ t.hostname or "" }}</td><td>{{ t.queue or "" }}</td>
<td>{{ when(t.sent) }}</td><td>{{ when(t.started) }}</td><td>{{ "%.3f"|format(t.runtime) if t.runtime is not none
else "" }}</td><td>{{ when(t.updated) }}</td></tr>{% endfor %}</table>
{% if page > 1 %}<a href="?{{ page_link(page - 1) }}">previous</a>{% endif %}
{% if page < pages %}<a href="?{{ page_link(page + 1) }}">next</a>{% endif %}</div>{% endblock %}"""

TASK = """{% extends "base" %}{% block body %}<h1>{{ t.name or "task" }} <small>{{ t.uuid }}</small></h1>
<div id="live"><p>state: <b class="{{ t.state }}" id="state">{{ t.state }}</b> · worker {{ t.hostname or "-" }}
· queue {{ t.queue or "-" }} · retries {{ t.retries }}</p>
<p>queue wait: {{ wait }} · run time: {{ run }}</p>
<p>args: <code>{{ t.args }}</code> kwargs: <code>{{ t.kwargs }}</code></p>
{% if t.root_id and t.root_id != t.uuid %}<p>root: <a href="/tasks/{{ t.root_id }}">{{ t.root_id }}</a>
(<a href="/canvas/{{ t.root_id }}">canvas</a>)</p>{% endif %}
{% if t.parent_id %}<p>parent: <a href="/tasks/{{ t.parent_id }}">{{ t.parent_id }}</a></p>{% endif %}
{% if t.retry_of %}<p>re-sent from the dashboard for:
<a href="/tasks/{{ t.retry_of }}">{{ t.retry_of }}</a></p>{% endif %}
{% for r in related.resent %}<p>re-sent as: <a class="resent" href="/tasks/{{ r.uuid }}">{{ r.uuid }}</a>
<span class="{{ r.state }}">{{ r.state }}</span></p>{% endfor %}
{% if related.children %}<h2>children</h2><ul>{% for c in related.children %}<li><a href="/tasks/{{ c.uuid }}">
{{ c.name }}</a> <span class="{{ c.state }}">{{ c.state }}</span></li>{% endfor %}</ul>{% endif %}
<h2>timeline</h2><table><tr><th>event</th><th>time</th><th>worker</th><th>detail</th></tr>
{% for e in timeline %}<tr><td>{{ e.type }}</td><td>{{ when(e.ts) }}</td><td>{{ e.hostname or "" }}</td>
<td>{{ e.fields|tojson if e.fields else "" }}</td></tr>{% endfor %}</table>
{% if t.exception %}<h2>exception</h2><pre class="exception">{{ t.exception }}</pre>{% endif %}
{% if t.traceback %}<h2>traceback</h2><pre class="traceback">{{ t.traceback }}</pre>{% endif %}
{% if t.result %}<h2>result</h2><pre>{{ t.result }}</pre>{% endif %}</div>
{% if can_operate %}<form class="inline" method="post" action="/tasks/{{ t.uuid }}/retry">
<input type="hidden" name="csrf" value="{{ csrf }}"><button id="retry">retry</button></form>
<form class="inline" method="post" action="/tasks/{{ t.uuid }}/revoke"><input type="hidden" name="csrf"
value="{{ csrf }}"><label><input type="checkbox" name="terminate"> terminate</label><button>revoke</button></form>
<form class="inline" method="post" action="/tasks/{{ t.uuid }}/discard"><input type="hidden" name="csrf"
value="{{ csrf }}"><button>discard</button></form>{% endif %}{% endblock %}"""

QUEUES = """{% extends "base" %}{% block body %}<h1>Queues</h1><div id="live"><table>
<tr><th>queue</th><th>waiting messages</th><th>oldest waiting</th><th>dead letters</th><th>consumers</th>
<th></th></tr>
{% for q in queues %}<tr><td><a href="/queues/{{ q.name }}">{{ q.name }}</a></td><td>{{ q.depth }}</td>
<td>{{ "%.1fs"|format(q.oldest) if q.oldest is not none else "" }}</td><td>{% if q.dead %}<a
href="/queues/{{ q.name }}.dead">{{ q.dead }}</a>{% else %}{{ q.dead }}{% endif %}</td><td>{{ q.consumers }}</td>
<td>{% if can_admin %}
<form class="inline" method="post" action="/queues/{{ q.name }}/purge"><input type="hidden" name="csrf"
value="{{ csrf }}"><input name="confirm" placeholder="type {{ q.name }} to purge" size="18"><button>purge</button>
</form>{% endif %}</td></tr>{% endfor %}</table></div>{% endblock %}"""

PEEK = """{% extends "base" %}{% block body %}<h1>{{ queue }}</h1><p>The next messages, {% if messages and
messages[0].estimated %}as the history knows them: tasks sent to this queue (task-sent events) that no worker has
received yet (this broker cannot be looked into without taking messages){% else %}read without consuming
them{% endif %}{% if oldest is not none %}; the oldest has waited {{ "%.1f"|format(oldest) }}s{% endif %}.</p>
<div id="live"><table><tr><th>task id</th><th>task</th><th>retries</th><th>eta</th><th>waiting</th></tr>
{% for m in messages %}<tr><td>{% if m.id %}<a href="/tasks/{{ m.id }}">{{ m.id }}</a>{% endif %}</td>
<td>{{ m.task or "" }}</td><td>{{ m.retries if m.retries is not none else "" }}</td><td>{{ m.eta or "" }}</td>
<td>{{ "%.1fs"|format(m.waiting) if m.waiting is not none else "" }}</td></tr>{% else %}<tr><td colspan="5">
empty</td></tr>{% endfor %}</table></div>{% endblock %}"""

BEAT = """{% extends "base" %}{% block body %}<h1>Beat</h1>
<p>leader: {% if leader %}{{ leader.holder or leader.hostname }} (token {{ leader.token }}, since
{{ when(leader.timestamp) }}){% else %}no beat-leader event seen yet{% endif %}</p>
{% if problem %}<p class="flash">{{ problem }}</p>{% endif %}
<table><tr><th>entry</th><th>task</th><th>schedule</th><th>last slot</th><th>next slot</th><th>last task</th></tr>
{% for e in entries %}<tr><td>{{ e.name }}</td><td>{{ e.task }}</td><td>{{ e.schedule }}</td><td>{{ e.last }}</td>
<td>{{ e.next }}</td><td>{% if e.uuid %}<a href="/tasks/{{ e.uuid }}">{{ e.uuid }}</a>{% endif %}</td></tr>
{% else %}<tr><td colspan="6">no beat_schedule in this app (start the dashboard with -A)</td></tr>{% endfor %}
</table>{% endblock %}"""

CONTROL = """{% extends "base" %}{% block body %}<h1>Control</h1>{% if not can_operate %}
<p>Your role ({{ role }}) may look but not act.</p>{% else %}
{% for name, fields in commands %}<form method="post" action="/control/{{ name }}"><b>{{ name }}</b>
<input type="hidden" name="csrf" value="{{ csrf }}"><input name="destination" placeholder="worker (all)">
{% for field in fields %}<input name="{{ field }}" placeholder="{{ field }}">{% endfor %}<button>send</button>
</form>{% endfor %}{% endif %}{% if replies %}<h2>replies</h2><pre>{{ replies }}</pre>{% endif %}{% endblock %}"""

AUDIT = """{% extends "base" %}{% block body %}<h1>Audit log</h1><div id="live"><table>
<tr><th>time</th><th>user</th><th>action</th><th>detail</th></tr>{% for a in entries %}<tr><td>{{ when(a.ts) }}
</td><td>{{ a.user }}</td><td>{{ a.action }}</td><td><code>{{ a.detail }}</code></td></tr>{% endfor %}</table></div>
{% endblock %}"""

CANVAS = """{% extends "base" %}{% block body %}<h1>Canvas {{ root }}</h1><div id="live"><ul>
{% for node in nodes %}<li style="margin-left:{{ node.depth * 1.5 }}em"><a href="/tasks/{{ node.uuid }}">
{{ node.name }}</a> <span class="{{ node.state }}">{{ node.state }}</span></li>{% endfor %}</ul></div>
{% endblock %}"""


def environment() -> Environment:
    """The Jinja2 environment of every page (HTML autoescaped)."""
    return Environment(
        loader=DictLoader(
            {
                "base": BASE,
                "workers": WORKERS,
                "worker": WORKER,
                "tasks": TASKS,
                "task": TASK,
                "queues": QUEUES,
                "peek": PEEK,
                "beat": BEAT,
                "control": CONTROL,
                "audit": AUDIT,
                "canvas": CANVAS,
            }
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
