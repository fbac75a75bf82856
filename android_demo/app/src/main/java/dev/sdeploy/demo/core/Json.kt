package dev.sdeploy.demo.core

// Pure Kotlin: no android/androidx imports here (checked by tests/test_android_demo.py), and
// nothing newer than the Kotlin 1.3 standard library, so CI compiles it with Debian's kotlinc.

/** Malformed JSON, or JSON without the fields or types a reader expects. */
class JsonException(message: String) : RuntimeException(message)

/**
 * A small strict JSON (RFC 8259) reader, enough for model.json and the golden vectors.
 *
 * Objects become `Map<String, Any?>` (key order kept), arrays `List<Any?>`, strings `String`,
 * `true`/`false` `Boolean`, `null` null, and numbers `Long` when written without fraction or
 * exponent and in range, `Double` otherwise (parsed with correct rounding, so Python's
 * `repr` floats round-trip exactly).
 */
object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        reader.skipWhitespace()
        val value = reader.readValue(0)
        reader.skipWhitespace()
        if (!reader.atEnd()) reader.fail("unexpected '${text[reader.pos]}' after the JSON value")
        return value
    }

    /** [parse] a text whose top level must be an object. */
    fun parseObject(text: String, what: String = "JSON"): JsonObject {
        val value = parse(text)
        @Suppress("UNCHECKED_CAST")
        val map = value as? Map<String, Any?> ?: throw JsonException("$what: expected a JSON object at the top level")
        return JsonObject(map, what, "")
    }

    private const val MAX_DEPTH = 200

    private class Reader(val text: String) {
        var pos = 0

        fun atEnd() = pos >= text.length

        fun fail(message: String): Nothing {
            var line = 1
            var column = 1
            for (i in 0 until minOf(pos, text.length)) {
                if (text[i] == '\n') {
                    line++
                    column = 1
                } else {
                    column++
                }
            }
            throw JsonException("invalid JSON at line $line, column $column: $message")
        }

        fun skipWhitespace() {
            while (pos < text.length) {
                val c = text[pos]
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') pos++ else return
            }
        }

        fun readValue(depth: Int): Any? {
            if (depth > MAX_DEPTH) fail("nested deeper than $MAX_DEPTH levels")
            if (atEnd()) fail("unexpected end of input")
            val c = text[pos]
            return when {
                c == '{' -> readObject(depth)
                c == '[' -> readArray(depth)
                c == '"' -> readString()
                c == '-' || (c in '0'..'9') -> readNumber()
                text.startsWith("true", pos) -> { pos += 4; true }
                text.startsWith("false", pos) -> { pos += 5; false }
                text.startsWith("null", pos) -> { pos += 4; null }
                else -> fail("unexpected '$c'")
            }
        }

        private fun expect(c: Char) {
            if (atEnd() || text[pos] != c) fail(if (atEnd()) "expected '$c', got end of input" else "expected '$c', got '${text[pos]}'")
            pos++
        }

        private fun readObject(depth: Int): Map<String, Any?> {
            expect('{')
            val map = LinkedHashMap<String, Any?>()
            skipWhitespace()
            if (!atEnd() && text[pos] == '}') {
                pos++
                return map
            }
            while (true) {
                skipWhitespace()
                if (atEnd() || text[pos] != '"') fail("expected a string key")
                val key = readString()
                skipWhitespace()
                expect(':')
                skipWhitespace()
                map[key] = readValue(depth + 1)
                skipWhitespace()
                if (atEnd()) fail("unterminated object")
                when (text[pos]) {
                    ',' -> pos++
                    '}' -> { pos++; return map }
                    else -> fail("expected ',' or '}' in object")
                }
            }
        }

        private fun readArray(depth: Int): List<Any?> {
            expect('[')
            val list = ArrayList<Any?>()
            skipWhitespace()
            if (!atEnd() && text[pos] == ']') {
                pos++
                return list
            }
            while (true) {
                skipWhitespace()
                list.add(readValue(depth + 1))
                skipWhitespace()
                if (atEnd()) fail("unterminated array")
                when (text[pos]) {
                    ',' -> pos++
                    ']' -> { pos++; return list }
                    else -> fail("expected ',' or ']' in array")
                }
            }
        }

        private fun readString(): String {
            expect('"')
            val out = StringBuilder()
            while (true) {
                if (atEnd()) fail("unterminated string")
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c == '\\' -> {
                        if (atEnd()) fail("unterminated escape")
                        val e = text[pos++]
                        when (e) {
                            '"' -> out.append('"')
                            '\\' -> out.append('\\')
                            '/' -> out.append('/')
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                if (pos + 4 > text.length) fail("truncated \\u escape")
                                var code = 0
                                for (i in 0 until 4) {
                                    val digit = Character.digit(text[pos + i], 16)
                                    if (digit < 0) fail("bad hex digit in \\u escape")
                                    code = code * 16 + digit
                                }
                                pos += 4
                                out.append(code.toChar()) // surrogate pairs arrive as two escapes
                            }
                            else -> fail("bad escape '\\$e'")
                        }
                    }
                    c < ' ' -> { pos--; fail("control character in string") }
                    else -> out.append(c)
                }
            }
        }

        private fun readNumber(): Any {
            val start = pos
            var integral = true
            if (text[pos] == '-') pos++
            if (atEnd()) fail("truncated number")
            if (text[pos] == '0') {
                pos++
            } else if (text[pos] in '1'..'9') {
                while (!atEnd() && text[pos] in '0'..'9') pos++
            } else {
                fail("bad number")
            }
            if (!atEnd() && text[pos] == '.') {
                integral = false
                pos++
                if (atEnd() || text[pos] !in '0'..'9') fail("expected a digit after '.'")
                while (!atEnd() && text[pos] in '0'..'9') pos++
            }
            if (!atEnd() && (text[pos] == 'e' || text[pos] == 'E')) {
                integral = false
                pos++
                if (!atEnd() && (text[pos] == '+' || text[pos] == '-')) pos++
                if (atEnd() || text[pos] !in '0'..'9') fail("expected a digit in the exponent")
                while (!atEnd() && text[pos] in '0'..'9') pos++
            }
            val literal = text.substring(start, pos)
            if (integral) {
                val asLong = literal.toLongOrNull()
                if (asLong != null) return asLong
            }
            return literal.toDouble()
        }
    }
}

/**
 * Typed access to a parsed JSON object; errors name the source and the field,
 * e.g. `model.json: preprocess.mean must be an array of numbers, got "x"`.
 */
class JsonObject(val map: Map<String, Any?>, val source: String, private val prefix: String) {
    fun has(key: String): Boolean = map.containsKey(key)

    fun where(key: String) = "$source: $prefix$key"

    private fun wrongType(key: String, expected: String): JsonException {
        val value = map[key]
        return if (!map.containsKey(key)) {
            JsonException("${where(key)} is missing")
        } else {
            JsonException("${where(key)} must be $expected, got ${describe(value)}")
        }
    }

    fun string(key: String): String = map[key] as? String ?: throw wrongType(key, "a string")

    fun stringOr(key: String, default: String): String = if (has(key)) string(key) else default

    fun stringOrNull(key: String): String? = if (map[key] == null) null else string(key)

    fun long(key: String): Long = asLong(map[key]) ?: throw wrongType(key, "an integer")

    fun int(key: String): Int {
        val value = long(key)
        if (value < Int.MIN_VALUE || value > Int.MAX_VALUE) throw JsonException("${where(key)} is out of range: $value")
        return value.toInt()
    }

    fun intOr(key: String, default: Int): Int = if (has(key)) int(key) else default

    fun double(key: String): Double = (map[key] as? Number)?.toDouble() ?: throw wrongType(key, "a number")

    fun doubleOr(key: String, default: Double): Double = if (has(key)) double(key) else default

    fun obj(key: String): JsonObject {
        @Suppress("UNCHECKED_CAST")
        val value = map[key] as? Map<String, Any?> ?: throw wrongType(key, "an object")
        return JsonObject(value, source, "$prefix$key.")
    }

    fun array(key: String): List<Any?> {
        @Suppress("UNCHECKED_CAST")
        return map[key] as? List<Any?> ?: throw wrongType(key, "an array")
    }

    fun doubles(key: String): List<Double> {
        val items = array(key)
        return items.map { (it as? Number)?.toDouble() ?: throw wrongType(key, "an array of numbers") }
    }

    fun strings(key: String): List<String> {
        val items = array(key)
        return items.map { it as? String ?: throw wrongType(key, "an array of strings") }
    }

    /** An array of objects, each with typed access that names its index (`images[2].name is missing`). */
    fun objects(key: String): List<JsonObject> = array(key).mapIndexed { i, item ->
        @Suppress("UNCHECKED_CAST")
        val value = item as? Map<String, Any?> ?: throw JsonException("${where(key)}[$i] must be an object, got ${describe(item)}")
        JsonObject(value, source, "$prefix$key[$i].")
    }

    companion object {
        /** An integral JSON number as Long (also `3.0`), else null. */
        fun asLong(value: Any?): Long? = when (value) {
            is Long -> value
            is Int -> value.toLong()
            is Double -> if (value == Math.floor(value) && Math.abs(value) < 9.007199254740992E15) value.toLong() else null
            else -> null
        }

        fun describe(value: Any?): String = when (value) {
            null -> "null"
            is String -> "\"$value\""
            is Map<*, *> -> "an object"
            is List<*> -> "an array"
            else -> value.toString()
        }
    }
}

/**
 * Writes JSON the way Python's `json.loads` reads it back exactly: doubles use the shortest
 * representation that round-trips (so a float32 output widened to double keeps its value), and
 * non-finite numbers are written as `NaN` / `Infinity` / `-Infinity` like `json.dumps` does
 * (Python reads them; an engine that returns NaN must show up in the report, not vanish).
 *
 * Values: `Map<String, *>` (key order kept), `List<*>`, `DoubleArray`, `FloatArray`, `String`,
 * `Boolean`, any `Number`, and null. Objects are indented; arrays of plain values stay on one line.
 */
object JsonWriter {
    fun write(value: Any?, indent: Int = 1): String {
        val out = StringBuilder()
        writeValue(out, value, indent, 0)
        return out.toString()
    }

    private fun writeValue(out: StringBuilder, value: Any?, indent: Int, depth: Int) {
        when (value) {
            null -> out.append("null")
            is String -> writeString(out, value)
            is Boolean -> out.append(if (value) "true" else "false")
            is Double -> writeDouble(out, value)
            is Float -> writeDouble(out, value.toDouble())
            is Number -> out.append(value.toLong().toString())
            is DoubleArray -> writeValue(out, value.toList(), indent, depth)
            is FloatArray -> writeValue(out, value.map { it.toDouble() }, indent, depth)
            is IntArray -> writeValue(out, value.toList(), indent, depth)
            is Map<*, *> -> writeObject(out, value, indent, depth)
            is List<*> -> writeArray(out, value, indent, depth)
            else -> throw IllegalArgumentException("cannot write ${value.javaClass.name} as JSON")
        }
    }

    private fun newline(out: StringBuilder, indent: Int, depth: Int) {
        out.append('\n')
        for (i in 0 until indent * depth) out.append(' ')
    }

    private fun writeObject(out: StringBuilder, map: Map<*, *>, indent: Int, depth: Int) {
        if (map.isEmpty()) {
            out.append("{}")
            return
        }
        out.append('{')
        var first = true
        for ((key, item) in map) {
            if (!first) out.append(',')
            first = false
            newline(out, indent, depth + 1)
            writeString(out, key as? String ?: throw IllegalArgumentException("JSON object keys must be strings, got $key"))
            out.append(": ")
            writeValue(out, item, indent, depth + 1)
        }
        newline(out, indent, depth)
        out.append('}')
    }

    private fun writeArray(out: StringBuilder, list: List<*>, indent: Int, depth: Int) {
        val flat = list.all { it !is Map<*, *> && it !is List<*> && it !is DoubleArray && it !is FloatArray }
        out.append('[')
        for ((i, item) in list.withIndex()) {
            if (i > 0) out.append(if (flat) ", " else ",")
            if (!flat) newline(out, indent, depth + 1)
            writeValue(out, item, indent, depth + 1)
        }
        if (!flat && list.isNotEmpty()) newline(out, indent, depth)
        out.append(']')
    }

    private fun writeDouble(out: StringBuilder, value: Double) {
        when {
            value.isNaN() -> out.append("NaN")
            value == Double.POSITIVE_INFINITY -> out.append("Infinity")
            value == Double.NEGATIVE_INFINITY -> out.append("-Infinity")
            else -> out.append(value.toString()) // e.g. 0.1, 1.0E-5: valid JSON, exact round trip
        }
    }

    private fun writeString(out: StringBuilder, text: String) {
        out.append('"')
        for (c in text) {
            when {
                c == '"' -> out.append("\\\"")
                c == '\\' -> out.append("\\\\")
                c == '\n' -> out.append("\\n")
                c == '\r' -> out.append("\\r")
                c == '\t' -> out.append("\\t")
                c < ' ' -> out.append(String.format("\\u%04x", c - '\u0000')) // the char code, without the deprecated Char.toInt()
                else -> out.append(c)
            }
        }
        out.append('"')
    }
}
