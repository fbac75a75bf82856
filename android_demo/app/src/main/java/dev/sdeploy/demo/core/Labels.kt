package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

/**
 * labels.txt -> class names, as shufflenet_deploy/labels.py reads it: Python's `str.splitlines()`
 * (\n, \r\n, \r and the other Unicode line boundaries), trailing blank lines dropped, each line
 * stripped of Python whitespace.
 */
object Labels {
    fun parse(text: String): List<String> {
        val lines = splitLines(text).toMutableList()
        while (lines.isNotEmpty() && strip(lines[lines.size - 1]).length == 0) lines.removeAt(lines.size - 1)
        return lines.map { strip(it) }
    }

    /** Parse and check against the model: one non-empty label per class. */
    fun parse(text: String, numClasses: Int, source: String = "labels.txt"): List<String> {
        val labels = parse(text)
        if (labels.size != numClasses) {
            throw IllegalArgumentException("$source has ${labels.size} labels but the model has $numClasses classes; re-run sdeploy bundle")
        }
        val empty = labels.indexOf("")
        if (empty >= 0) throw IllegalArgumentException("$source has an empty line at line ${empty + 1}")
        return labels
    }

    /** Python's `str.splitlines()` (no trailing empty piece after a final line break). */
    fun splitLines(text: String): List<String> {
        val lines = ArrayList<String>()
        var start = 0
        var i = 0
        while (i < text.length) {
            val c = text[i]
            if (isLineBreak(c)) {
                lines.add(text.substring(start, i))
                if (c == '\r' && i + 1 < text.length && text[i + 1] == '\n') i++
                start = i + 1
            }
            i++
        }
        if (start < text.length) lines.add(text.substring(start))
        return lines
    }

    /** Python's `str.strip()` with no arguments. */
    fun strip(text: String): String {
        var start = 0
        var end = text.length
        while (start < end && isPythonSpace(text[start])) start++
        while (end > start && isPythonSpace(text[end - 1])) end--
        return text.substring(start, end)
    }

    fun isLineBreak(c: Char): Boolean =
        c == '\n' || c == '\r' || c == '\u000B' || c == '\u000C' || c == '\u001C' || c == '\u001D' ||
            c == '\u001E' || c == '\u0085' || c == '\u2028' || c == '\u2029'

    /** Python's `str.isspace()` for one character. */
    fun isPythonSpace(c: Char): Boolean =
        (c in '\u0009'..'\u000D') || (c in '\u001C'..'\u0020') || c == '\u0085' || c == '\u00A0' ||
            c == '\u1680' || (c in '\u2000'..'\u200A') || c == '\u2028' || c == '\u2029' || c == '\u202F' ||
            c == '\u205F' || c == '\u3000'
}
