package dev.sdeploy.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertSame
import org.junit.Test

class ArgbImageTest {
    // A 3x2 image whose red channel is [[1, 37, 73], [109, 145, 181]].
    private val image = ArgbImage(intArrayOf(1, 37, 73, 109, 145, 181).map { (0xFF shl 24) or (it shl 16) }.toIntArray(), 3, 2)

    private fun reds(image: ArgbImage) = image.pixels.map { (it shr 16) and 0xFF }

    /** Expected values are Pillow's `ImageOps.exif_transpose` of the same image tagged with each orientation. */
    @Test
    fun exifOrientationsMatchPillow() {
        val pillow = mapOf(
            1 to Triple(3, 2, listOf(1, 37, 73, 109, 145, 181)),
            2 to Triple(3, 2, listOf(73, 37, 1, 181, 145, 109)),
            3 to Triple(3, 2, listOf(181, 145, 109, 73, 37, 1)),
            4 to Triple(3, 2, listOf(109, 145, 181, 1, 37, 73)),
            5 to Triple(2, 3, listOf(1, 109, 37, 145, 73, 181)),
            6 to Triple(2, 3, listOf(109, 1, 145, 37, 181, 73)),
            7 to Triple(2, 3, listOf(181, 73, 145, 37, 109, 1)),
            8 to Triple(2, 3, listOf(73, 181, 37, 145, 1, 109))
        )
        for ((orientation, want) in pillow) {
            val out = image.oriented(orientation)
            assertEquals("orientation $orientation width", want.first, out.width)
            assertEquals("orientation $orientation height", want.second, out.height)
            assertEquals("orientation $orientation pixels", want.third, reds(out))
        }
        assertSame(image, image.oriented(0))
        assertSame(image, image.oriented(9))
    }

    @Test
    fun rgbaBytesBecomeArgbInts() {
        val rgba = byteArrayOf(1, 2, 3, 4, 0xFF.toByte(), 0x80.toByte(), 0, 0x7F)
        val argb = ArgbImage.fromRgba(rgba, 2, 1)
        assertArrayEquals(intArrayOf(0x04010203, 0x7FFF8000), argb.pixels)
    }

    @Test
    fun thumbnailKeepsTheAspectRatio() {
        val big = ArgbImage(IntArray(4000 * 3000) { it }, 4000, 3000)
        val small = big.thumbnail(1024)
        assertEquals(1024, small.width)
        assertEquals(768, small.height)
        assertSame(image, image.thumbnail(10))
    }

    @Test
    fun orientedViewsReadWhatTheRotatedCopyHolds() {
        val random = java.util.Random(3)
        val photo = ArgbImage(IntArray(37 * 23) { (0xFF shl 24) or random.nextInt(0x1000000) }, 37, 23)
        val contract = InputContract(imgSize = 16, resizeSize = 19)
        for (orientation in 0..9) {
            val copy = photo.oriented(orientation)
            val view = OrientedImage(photo, orientation)
            assertEquals("orientation $orientation width", copy.width, view.width)
            assertEquals("orientation $orientation height", copy.height, view.height)
            assertArrayEquals("orientation $orientation pixels", copy.pixels, view.toArgbImage().pixels)
            // The preprocessing reads through the view and gets bit-identical values.
            assertArrayEquals("orientation $orientation preprocess",
                Preprocess.resizeAndCrop(copy.pixels, copy.width, copy.height, contract),
                Preprocess.resizeAndCrop(view, contract), 0.0)
            assertArrayEquals(copy.thumbnail(10).pixels, view.thumbnail(10).pixels)
        }
    }
}

