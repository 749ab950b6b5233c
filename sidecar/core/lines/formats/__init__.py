"""The line formats, one module per family of loggers (`sidecar.core.lines.decode` tries them):

- `json`: JSON objects, Go's loggers' and the other languages' shapes;
- `go`: klog text, controller-runtime's console encoder, logfmt, Go panics and klog's multi-line
  values;
- `python`: `logging` text as kopf writes it;
- `java`: log4j2 text in Strimzi's pattern;
- `declared`: the formats a rules file declares;
- `common`: what they all read alike (level names, times).
"""
