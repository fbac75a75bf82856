package dev.sdeploy.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** labels.txt parsing against Python's `read_labels_file`. */
class GoldenLabelsTest {
    @Test
    fun labelsMatchPython() {
        val cases = Golden.objects(Golden.load().array("labels"), "labels")
        assertTrue("golden.json has no label cases", cases.isNotEmpty())
        for (case in cases) {
            val text = case.string("text")
            assertEquals("labels of ${JsonObject.describe(text)}", case.strings("labels"), Labels.parse(text))
        }
    }

    @Test
    fun pythonLineBreaksAndWhitespace() {
        assertEquals(listOf("a", "b", "c", "d"), Labels.splitLines("a\rb\r\nc\u2028d"))
        assertEquals(listOf("a", ""), Labels.splitLines("a\n\n"))
        assertEquals(listOf<String>(), Labels.splitLines(""))
        assertEquals(listOf("x y", "z"), Labels.parse("\u00a0x y\u3000\n\tz \u0085 \n \n"))
        assertEquals(listOf("", "b"), Labels.parse("\nb"))
    }

    @Test
    fun countAndEmptyLinesAreChecked() {
        assertEquals(listOf("a", "b"), Labels.parse("a\nb\n", 2))
        try {
            Labels.parse("a\nb\n", 3)
            fail("a wrong label count must be rejected")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message, (e.message ?: "").contains("2 labels but the model has 3"))
        }
        try {
            Labels.parse("a\n\nb", 3)
            fail("an empty label must be rejected")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message, (e.message ?: "").contains("line 2"))
        }
    }
}
