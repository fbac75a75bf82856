package dev.sdeploy.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class JsonTest {
    @Test
    fun valuesOfEveryKind() {
        val value = Json.parse(""" {"a": [1, -2, 3.5, -0.25e1, 1E+2, 0, true, false, null, "x"], "b": {}, "c": [], "d": {"e": [[]]}} """)
        assertEquals(
            mapOf(
                "a" to listOf(1L, -2L, 3.5, -2.5, 100.0, 0L, true, false, null, "x"),
                "b" to mapOf<String, Any?>(),
                "c" to listOf<Any?>(),
                "d" to mapOf("e" to listOf(listOf<Any?>()))
            ),
            value
        )
    }

    @Test
    fun keyOrderIsKept() {
        @Suppress("UNCHECKED_CAST")
        val map = Json.parse("""{"z": 1, "a": 2, "m": 3}""") as Map<String, Any?>
        assertEquals(listOf("z", "a", "m"), map.keys.toList())
    }

    @Test
    fun pythonReprFloatsRoundTrip() {
        assertEquals(1.0 / 255.0, Json.parse("0.00392156862745098"))
        assertEquals(0.229, Json.parse("0.229"))
        assertEquals(9007199254740993L, Json.parse("9007199254740993"))
        assertEquals(1e300, Json.parse("1e300"))
        assertEquals(1.0E20, Json.parse("100000000000000000000")) // past Long: a double
    }

    @Test
    fun stringEscapes() {
        assertEquals("q\" b\\ s/ \b\u000C\n\r\t é \uD83D\uDE00 ü", Json.parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 ü\""))
    }

    @Test
    fun malformedJsonIsRejectedWithAPosition() {
        val bad = listOf("", "{", "[1,]", "{\"a\" 1}", "{'a': 1}", "01", "1.", "-", ".5", "1e", "tru", "\"a", "\"\\x\"",
            "\"\\u12\"", "[1] 2", "{\"a\": 1,}", "NaN", "\"tab\there\"", "{1: 2}")
        for (text in bad) {
            try {
                Json.parse(text)
                fail("accepted ${JsonObject.describe(text)}")
            } catch (e: JsonException) {
                assertTrue(e.message, (e.message ?: "").startsWith("invalid JSON at line "))
            }
        }
        try {
            Json.parse("{\n  \"a\": [1,\n  2 3]}")
            fail("accepted a missing comma")
        } catch (e: JsonException) {
            assertEquals("invalid JSON at line 3, column 5: expected ',' or ']' in array", e.message)
        }
    }

    @Test
    fun deepNestingIsRefusedNotAStackOverflow() {
        try {
            Json.parse("[".repeat(100000))
            fail("accepted unbalanced nesting")
        } catch (e: JsonException) {
            assertTrue(e.message, (e.message ?: "").contains("nested deeper"))
        }
    }

    @Test
    fun typedAccessNamesTheField() {
        val json = Json.parseObject("""{"a": {"b": "x", "n": 3.0, "f": 2.5}}""", "model.json")
        assertEquals(3, json.obj("a").int("n"))
        try {
            json.obj("a").int("f")
            fail("2.5 is not an integer")
        } catch (e: JsonException) {
            assertEquals("model.json: a.f must be an integer, got 2.5", e.message)
        }
        try {
            json.obj("a").double("b")
            fail("\"x\" is not a number")
        } catch (e: JsonException) {
            assertEquals("model.json: a.b must be a number, got \"x\"", e.message)
        }
        try {
            json.obj("missing")
            fail("missing object")
        } catch (e: JsonException) {
            assertEquals("model.json: missing is missing", e.message)
        }
    }

    @Test
    fun writerRoundTripsThroughTheReader() {
        val value = linkedMapOf<String, Any?>(
            "s" to "q\" b\\ \n\t\u0001 é",
            "n" to null, "t" to true, "f" to false, "i" to 42, "l" to 9007199254740993L,
            "d" to doubleArrayOf(0.1, -2.5e-7, 1e300, 1.0 / 3.0, 0.0),
            "fl" to floatArrayOf(0.1f, 3.4028235e38f, -1.0e-45f),
            "nested" to listOf(mapOf("a" to listOf<Any?>()), emptyMap<String, Any?>())
        )
        val text = JsonWriter.write(value)
        @Suppress("UNCHECKED_CAST")
        val back = Json.parse(text) as Map<String, Any?>
        assertEquals(value["s"], back["s"])
        assertEquals(null, back["n"])
        assertEquals(true, back["t"])
        assertEquals(42L, back["i"])
        assertEquals(9007199254740993L, back["l"])
        // Doubles come back bit for bit; float32 values come back as the same number widened to double.
        assertEquals((value["d"] as DoubleArray).toList(), (back["d"] as List<*>).map { (it as Number).toDouble() })
        assertEquals((value["fl"] as FloatArray).map { it.toDouble() }, back["fl"])
        assertEquals(listOf(mapOf("a" to listOf<Any?>()), mapOf<String, Any?>()), back["nested"])
        assertEquals(listOf("s", "n", "t", "f", "i", "l", "d", "fl", "nested"), back.keys.toList())
    }

    @Test
    fun writerWritesNonFiniteNumbersAsPythonDoes() {
        // json.loads reads these; a broken engine's NaN must reach `sdeploy verify`, not turn into null.
        assertEquals("[NaN, Infinity, -Infinity, 1.5]", JsonWriter.write(listOf(Double.NaN, Double.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 1.5)))
        assertEquals("{\n \"a\": [1, 2],\n \"b\": {\n  \"c\": \"x\"\n }\n}", JsonWriter.write(linkedMapOf("a" to listOf(1, 2), "b" to mapOf("c" to "x"))))
    }
}
