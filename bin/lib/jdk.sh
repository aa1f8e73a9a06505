# Sourced by bin/ scripts: sets JAVA_HOME to a JDK 25 or newer, or explains what is missing.
stepstream_java_major() {
  "$1/bin/java" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}

stepstream_find_jdk() {
  local candidate major
  for candidate in "${STEPSTREAM_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25* /usr/lib/jvm/*-25-* \
      /usr/lib/jvm/*25* /usr/lib/jvm/* "$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /nonexistent)")")")"; do
    [ -n "$candidate" ] && [ -x "$candidate/bin/java" ] && [ -x "$candidate/bin/javac" ] || continue
    major=$(stepstream_java_major "$candidate")
    if [ -n "$major" ] && [ "$major" -ge 25 ]; then
      export JAVA_HOME="$candidate"
      return 0
    fi
  done
  echo "stepstream: needs a JDK 25 or newer; none found in \$STEPSTREAM_JAVA_HOME, \$JAVA_HOME or /usr/lib/jvm" >&2
  return 1
}
