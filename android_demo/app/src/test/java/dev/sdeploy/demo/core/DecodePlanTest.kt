package dev.sdeploy.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * The sampled-decode rule. android_demo/tools/sampled_decode_parity.py implements the same rule,
 * and tests/test_android_demo.py checks it against these same cases (SAMPLE_SIZE_CASES there).
 */
class DecodePlanTest {
    @Test
    fun jpegShorterSideStaysAtLeastTwiceTheResizeSize() {
        // width, height, resize_size, expected inSampleSize for a JPEG (and the decoded size it gives)
        val cases = listOf(
            listOf(6000, 4000, 256, 4), // 24 MP -> 1500 x 1000
            listOf(4000, 6000, 256, 4), // portrait, same
            listOf(4032, 3024, 256, 4), // 12 MP -> 1008 x 756
            listOf(4624, 3472, 232, 4), // resize 232 -> 1156 x 868
            listOf(1024, 1024, 256, 2), // exactly 2 x 256 left
            listOf(1023, 1023, 256, 1),
            listOf(1024, 768, 256, 1),
            listOf(100, 50, 256, 1),
            listOf(3000, 3000, 64, 8), // digits model (resize 64): capped at 8 -> 375 x 375
            listOf(60000, 4000, 256, 4), // panorama: 15000 x 1000 = 15 MP, under the pixel cap
            listOf(200000, 4000, 256, 8), // the pixel cap: 1/4 would be 50 MP
            listOf(100000, 20000, 256, 16) // past the cap of 8 only for the pixel cap
        )
        for ((w, h, resize, expected) in cases) {
            assertEquals("jpeg ${w}x$h resize $resize", expected, DecodePlan.sampleSize(w, h, resize, nativeScaling = true))
        }
    }

    @Test
    fun otherFormatsAreDecodedWholeUpToTheCap() {
        // width, height, expected inSampleSize for a PNG/HEIF/WebP (point sampling aliases, so only when needed)
        val cases = listOf(
            listOf(6000, 4000, 2), // 24 MP -> 6 MP
            listOf(4032, 3024, 1), // 12 MP: whole
            listOf(4000, 4000, 1), // exactly 16 MP
            listOf(4001, 4000, 2),
            listOf(12000, 9000, 4), // 108 MP -> 6.75 MP
            listOf(640, 480, 1)
        )
        for ((w, h, expected) in cases) {
            assertEquals("png ${w}x$h", expected, DecodePlan.sampleSize(w, h, 256, nativeScaling = false))
        }
        assertTrue(DecodePlan.nativeScaling("image/jpeg"))
        for (mime in listOf("image/png", "image/heif", "image/webp", "image/gif", null)) assertFalse(DecodePlan.nativeScaling(mime))
    }
}
